"""`get DIR --inventory FILE` (no etcd needed) and `get DIR --etcd URL`: which task runs on
which machine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_harness import ControllerProc, cli, wait_until, write_task
from etcd_harness import EtcdServer, etcd_server

from reconciler.inventory import InventoryError, InventoryHost, parse_inventory

ANSIBLE = """
# production
[web]
web[01:03].example.com ansible_host=10.0.1.1
db-a ansible_host=10.0.2.7 ansible_user=admin

[db]
db-[a:b] ansible_host=db.internal

[web:vars]
http_port=80

[all:children]
web
"""


def test_plain_hosts_file() -> None:
    hosts = parse_inventory("web-1 10.0.0.1,10.0.0.2\n# a comment\n\nbatch-1\nweb-1 10.0.0.3\n")
    assert hosts == [
        InventoryHost("web-1", ("10.0.0.1", "10.0.0.2", "10.0.0.3")),
        InventoryHost("batch-1", ()),
    ]
    with pytest.raises(InventoryError, match="line 1: 'nope' is not an IP address"):
        parse_inventory("web-1 nope\n")


def test_ansible_ini_ranges_groups_and_vars() -> None:
    hosts = {h.name: h for h in parse_inventory(ANSIBLE)}
    assert list(hosts) == ["web01.example.com", "web02.example.com", "web03.example.com",
                           "db-a", "db-b"]
    assert hosts["db-a"].addresses == ("10.0.2.7", "db.internal")
    assert "http_port=80" not in hosts and "web" not in hosts
    ident = hosts["web02.example.com"].identity()
    assert "web02" in ident.names and "web02.example.com" in ident.names
    assert "db.internal" in hosts["db-b"].identity().names


def test_get_inventory_matrix(tmp_path: Path) -> None:
    spec = tmp_path / "specs"
    spec.mkdir()
    write_task(spec, "everywhere", {"schedule": "@daily", "command": ["true"]})
    write_task(spec, "web-only", {"schedule": "@daily", "hosts": ["web*"], "command": ["true"]})
    write_task(spec, "report", {"schedule": "@daily", "hosts": ["10.0.0.0/16"],
                                "placement": "one", "command": ["true"]})
    write_task(spec, "nowhere", {"schedule": "@daily", "hosts": ["mail-*"], "command": ["true"]})
    inv = tmp_path / "hosts"
    inv.write_text("web-1 10.0.0.1\nweb-2 10.0.0.2\nbatch-1 192.168.1.5\n")
    out = cli("get", spec, "--inventory", inv)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["TASK", "PLACEMENT", "web-1", "web-2", "batch-1", "HOSTS"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["everywhere"] == ["all", "yes", "yes", "yes", "3"]
    assert rows["web-only"] == ["all", "yes", "yes", "-", "2"]
    assert rows["report"] == ["one", "one", "one", "-", "2"]
    assert "Runs on none of these hosts: nowhere" in out.stderr
    data = json.loads(cli("get", spec, "--inventory", inv, "-o", "json").stdout)
    assert data["hosts"][0] == {"name": "web-1", "addresses": ["10.0.0.1"]}
    runs_on = {t["name"]: t["runsOn"] for t in data["tasks"]}
    assert runs_on["report"] == ["web-1", "web-2"] and runs_on["nowhere"] == []
    ansible = tmp_path / "inventory.ini"
    ansible.write_text("[web]\nweb-9 ansible_host=10.0.0.9\n")
    out = cli("get", spec, "--inventory", ansible)
    assert out.returncode == 0 and "web-9" in out.stdout
    missing = cli("get", spec, "--inventory", tmp_path / "absent")
    assert missing.returncode == 2 and "absent" in missing.stderr


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    yield from etcd_server(tmp_path)


def test_get_with_live_hosts_from_etcd(
    dirs: tuple[Path, Path], etcd: EtcdServer, controllers: list[ControllerProc]
) -> None:
    spec, state = dirs
    write_task(spec, "web-only", {"schedule": "@daily", "hosts": ["web*"], "command": ["true"]})
    c = ControllerProc(spec, state, ["--etcd", etcd.url, "--hostname", "web-7",
                                     "--host-ip", "10.0.0.7"])
    controllers.append(c)
    c.wait_for("coordination.available", timeout=30)

    def matrix() -> dict[str, list[str]]:
        data = json.loads(cli("get", spec, "--etcd", etcd.url, "-o", "json").stdout)
        return {t["name"]: t["runsOn"] for t in data["tasks"]}

    wait_until(lambda: matrix() == {"web-only": ["web-7"]}, timeout=10, what="live host")
