import ipaddress

import pytest

from reconciler.hosts import (
    HostEntryError,
    HostIdentity,
    detect_identity,
    identity_for,
    matches,
    parse_host_entry,
)


def ident(addrs=(), names=()):
    return HostIdentity(
        addresses=frozenset(ipaddress.ip_address(a) for a in addrs), names=frozenset(names)
    )


@pytest.mark.parametrize(
    "entry, message",
    [
        ("10.0.1.5/24", "10.0.1.5/24 has host bits set; did you mean 10.0.1.0/24?"),
        ("10.0.0.0/33", "10.0.0.0/33 is not a valid CIDR block"),
        ("1.2.3", "1.2.3 is not a valid IPv4 address"),
        ("300.1.1.1", "300.1.1.1 is not a valid IPv4 address"),
        ("web server", "is not a valid hostname"),
        ("", "empty host entry"),
        ("fe80::zz", "is not a valid IP address"),
    ],
)
def test_bad_entries_are_named(entry: str, message: str) -> None:
    with pytest.raises(HostEntryError, match=message.replace("?", r"\?").replace(".", r"\.")):
        parse_host_entry(entry)


def test_long_entry_quoted_at_most_200_chars() -> None:
    with pytest.raises(HostEntryError) as err:
        parse_host_entry("x" * 1000 + " y")
    assert len(str(err.value)) < 300


def test_matching_rules() -> None:
    me = ident(["10.0.1.7", "fd00::2"], ["web-3", "web-3.example.org"])
    assert matches(None, me)
    assert not matches([], me)
    assert matches([parse_host_entry("10.0.1.7")], me)
    assert not matches([parse_host_entry("10.0.1.8")], me)
    assert matches([parse_host_entry("10.0.1.0/24")], me)
    assert not matches([parse_host_entry("10.0.2.0/24")], me)
    assert matches([parse_host_entry("fd00::/64")], me)
    assert matches([parse_host_entry("web-*")], me)
    assert matches([parse_host_entry("WEB-?.example.org")], me)
    assert not matches([parse_host_entry("db-*")], me)
    assert matches([parse_host_entry("db-*"), parse_host_entry("10.0.0.0/8")], me)


def test_overrides_replace_detection() -> None:
    me = detect_identity(environ={"RECONCILER_HOST_IP": "10.9.9.9", "RECONCILER_HOSTNAME": "Pod-1"})
    assert me.addresses == {ipaddress.ip_address("10.9.9.9")}
    assert me.names == {"pod-1"}
    flags = detect_identity(host_ip="10.1.1.1,10.1.1.2", hostname="x.y", environ={})
    assert flags.addresses == {ipaddress.ip_address("10.1.1.1"), ipaddress.ip_address("10.1.1.2")}
    assert flags.names == {"x.y", "x"}


def test_detection_excludes_loopback() -> None:
    me = detect_identity(environ={})
    assert all(not a.is_loopback for a in me.addresses)
    assert "localhost" not in me.names


def test_identity_for_plan() -> None:
    assert identity_for("10.0.0.5").addresses == {ipaddress.ip_address("10.0.0.5")}
    assert identity_for("web-1.example.org").names == {"web-1.example.org", "web-1"}
