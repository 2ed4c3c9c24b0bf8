"""The coordination room against a real etcd, without controllers: claims, their lifetime,
time-outs, locks."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import etcd_harness
import pytest
from controller_harness import ControllerProc, cli, write_task
from etcd_harness import EtcdServer, etcd_server, make_certs

from reconciler.coordination import CLAIM_TIMEOUT_S, EtcdConfig, EtcdCoordination, HostInfo
from reconciler.coordination.etcd import EtcdEngine


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    yield from etcd_server(tmp_path)


class Fake:
    type = "daemon"
    placement = "one"
    suspend = False
    starting_deadline_seconds = 10

    def spec_fingerprint(self) -> str:
        return "x"


def coordinator(etcd: EtcdServer, host: str, ttl: int = 3) -> EtcdCoordination:
    woke = threading.Event()
    c = EtcdCoordination(EtcdConfig((etcd.url,), lease_ttl_s=ttl),
                         HostInfo(host, ("10.0.0.1",), "test", Path("/nonexistent"), 0.0),
                         woke.set)
    c.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and c.keeper.claims_lease() is None:
        time.sleep(0.02)
    return c


def results(cs: list[EtcdCoordination], n: int, timeout: float = 10) -> list[list[Any]]:
    got: list[list[Any]] = [[] for _ in cs]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(map(len, got)) < n:
        for i, c in enumerate(cs):
            got[i].extend(c.observe().results)
        time.sleep(0.01)
    return got


def test_one_winner_per_due_second_and_growing_tokens(etcd: EtcdServer) -> None:
    cs = [coordinator(etcd, f"h{i}") for i in range(3)]
    try:
        dues = list(range(1000, 1030))
        for due in dues:
            for c in cs:
                c.claim([("t", due)])
        got = [r for rs in results(cs, 3 * len(dues)) for r in rs]
        assert len(got) == 3 * len(dues)
        won = {r.due: r for r in got if r.outcome == "won"}
        assert sorted(won) == dues  # exactly one winner each
        assert sum(r.outcome == "lost" for r in got) == 2 * len(dues)
        winners = {r.due: r.winner for r in got if r.outcome == "lost"}
        hosts = {c.host: c for c in cs}
        for due, r in won.items():
            assert winners[due] in hosts and r.token is not None
        tokens = [r.token for _, r in sorted(won.items())]
        assert len(set(tokens)) == len(tokens)
    finally:
        for c in cs:
            c.close()


def test_a_claim_outlives_its_winner(etcd: EtcdServer) -> None:
    """The winner stops (its lease revoked) or dies: a late claimant of the same due
    second still loses, so the run is not started twice."""
    a, b = coordinator(etcd, "a"), coordinator(etcd, "b")
    try:
        a.claim([("t", 500)])
        assert results([a], 1)[0][0].outcome == "won"
        a.close()
        b.claim([("t", 500)])
        late = results([b], 1)[0][0]
        assert late.outcome == "lost" and late.winner == "a"
    finally:
        b.close()


def test_claims_while_etcd_is_paused_are_unavailable_in_time(etcd: EtcdServer) -> None:
    c = coordinator(etcd, "a")
    try:
        etcd.pause()
        asked = time.monotonic()
        c.claim([("t", 1), ("t", 2)])
        got = results([c], 2, timeout=CLAIM_TIMEOUT_S + 2)[0]
        assert [r.outcome for r in got] == ["unavailable", "unavailable"]
        assert time.monotonic() - asked < CLAIM_TIMEOUT_S + 0.5
        etcd.resume()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not c.observe().reachable:
            time.sleep(0.05)
        c.claim([("t", 3)])
        assert results([c], 1)[0][0].outcome == "won"
    finally:
        etcd.resume()
        c.close()


def test_lock_held_by_one_released_on_close_taken_by_another(etcd: EtcdServer) -> None:
    cs = [coordinator(etcd, f"h{i}") for i in range(2)]
    try:
        for c in cs:
            c.tasks_now({"d": Fake()}, {"d": Fake()}, 0)

        def holders() -> list[int]:
            return [i for i, c in enumerate(cs) if "d" in c.observe().locks]

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not holders():
            time.sleep(0.02)
        assert len(holders()) == 1
        first = holders()[0]
        token = cs[first].observe().locks["d"].token
        cs[first].close()
        other = cs[1 - first]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "d" not in other.observe().locks:
            time.sleep(0.02)
        assert other.observe().locks["d"].token > token
        # The lock is given up when the task no longer wants it.
        other.tasks_now({}, {}, 0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and other.observe().locks:
            time.sleep(0.02)
        assert not other.observe().locks
        engine = EtcdEngine(EtcdConfig((etcd.url,)))
        assert engine.get("/reconciler/default/locks/d", 2) is None
        engine.close()
    finally:
        for c in cs:
            c.close()


def test_tls_with_client_certificates(tmp_path: Path, controllers: list[Any]) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certs = make_certs(tmp_path / "certs")
    server = EtcdServer(tmp_path / "tls-data", tls=certs)
    if server.tls is not None and etcd_harness.ETCD is None:
        pytest.skip("etcd is not installed")
    server.start()
    try:
        tls = ["--etcd", server.url, "--etcd-cacert", str(certs / "ca.crt"),
               "--etcd-cert", str(certs / "client.crt"), "--etcd-key", str(certs / "client.key")]
        spec = tmp_path / "specs"
        spec.mkdir()
        os.chmod(spec, 0o755)
        write_task(spec, "report", {"schedule": "* * * * * *", "placement": "one",
                                    "command": ["true"]})
        c = ControllerProc(spec, tmp_path / "state", [*tls, "--hostname", "tls-host"])
        controllers.append(c)
        c.wait_for("coordination.available", timeout=30)
        c.wait_for("run.started", task="report", timeout=10)
        out = cli("fleet", "hosts", *tls, "-o", "json")
        assert out.returncode == 0, out.stderr
        assert [h["host"] for h in json.loads(out.stdout)] == ["tls-host"]
        # Without a client certificate etcd refuses: the command says so, exit 1.
        bare = cli("fleet", "hosts", "--etcd", server.url, "--etcd-cacert",
                   str(certs / "ca.crt"), "-o", "json")
        assert bare.returncode == 1 and "etcd cannot be reached" in bare.stderr
    finally:
        server.stop()
