"""Who this machine is, and whether a task's `hosts` entries select it.

An entry is an IP address, a CIDR block or a hostname glob (`web-*`). The machine is known
by the addresses of its interfaces (loopback aside), its hostname and its FQDN; explicit
`--host-ip` / `--hostname` (or RECONCILER_HOST_IP / RECONCILER_HOSTNAME) replace detection,
e.g. a pod IP inside a container.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import os
import re
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DOTTED = re.compile(r"^[0-9.]+$")
# Hostname labels plus glob metacharacters; anything else is surely a typo.
_HOST_GLOB = re.compile(r"^[A-Za-z0-9_*?\[\]!.-]+$")
_MAX_QUOTE = 200


class HostEntryError(ValueError):
    """A `hosts` entry that is neither an address, a network nor a hostname pattern."""


@dataclass(frozen=True)
class HostPattern:
    text: str
    kind: Literal["ip", "cidr", "name"]
    address: IPAddress | None = None
    network: IPNetwork | None = None

    def matches(self, identity: HostIdentity) -> bool:
        if self.kind == "ip":
            return self.address in identity.addresses
        if self.kind == "cidr":
            assert self.network is not None
            return any(
                a.version == self.network.version and a in self.network
                for a in identity.addresses
            )
        pattern = self.text.lower()
        return any(fnmatch.fnmatchcase(name, pattern) for name in identity.names)


@dataclass(frozen=True)
class HostIdentity:
    addresses: frozenset[IPAddress] = field(default_factory=frozenset)
    names: frozenset[str] = field(default_factory=frozenset)

    def describe(self) -> dict[str, list[str]]:
        return {
            "addresses": sorted(str(a) for a in self.addresses),
            "names": sorted(self.names),
        }


def _quote(text: str) -> str:
    return text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE] + "..."


def parse_host_entry(text: str) -> HostPattern:
    """Classify and check one `hosts` entry."""
    entry = text.strip()
    if not entry:
        raise HostEntryError("empty host entry")
    if "/" in entry:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise HostEntryError(f"{_quote(entry)} is not a valid CIDR block") from None
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError:
            raise HostEntryError(
                f"{_quote(entry)} has host bits set; did you mean {net}?"
            ) from None
        return HostPattern(text=entry, kind="cidr", network=net)
    if _DOTTED.match(entry):
        try:
            return HostPattern(text=entry, kind="ip", address=ipaddress.IPv4Address(entry))
        except ValueError:
            raise HostEntryError(f"{_quote(entry)} is not a valid IPv4 address") from None
    if ":" in entry:
        try:
            return HostPattern(text=entry, kind="ip", address=ipaddress.ip_address(entry))
        except ValueError:
            raise HostEntryError(f"{_quote(entry)} is not a valid IP address") from None
    if not _HOST_GLOB.match(entry) or len(entry) > 253:
        raise HostEntryError(f"{_quote(entry)} is not a valid hostname or hostname pattern")
    return HostPattern(text=entry, kind="name")


def matches(patterns: Sequence[HostPattern] | None, identity: HostIdentity) -> bool:
    """No `hosts` field selects every host; an empty list selects none."""
    if patterns is None:
        return True
    return any(p.matches(identity) for p in patterns)


# Names every machine has; they select nothing in particular.
_GENERIC_NAMES = {"localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6"}


def _names(hostname: str) -> set[str]:
    name = hostname.strip().lower().rstrip(".")
    if not name or name in _GENERIC_NAMES:
        return set()
    return {name, name.split(".", 1)[0]}


def _interface_addresses() -> set[IPAddress]:
    """Interface addresses from /proc (no extra dependency, no DNS)."""
    found: set[IPAddress] = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii", errors="replace") as fh:
            last: str | None = None
            for line in fh:
                stripped = line.strip()
                if stripped.startswith("|--"):
                    last = stripped[3:].strip()
                elif "/32 host LOCAL" in stripped and last:
                    with contextlib.suppress(ValueError):
                        found.add(ipaddress.IPv4Address(last))
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 6 and len(parts[0]) == 32:
                    hexaddr = parts[0]
                    text = ":".join(hexaddr[i : i + 4] for i in range(0, 32, 4))
                    with contextlib.suppress(ValueError):
                        found.add(ipaddress.IPv6Address(text))
    except OSError:
        pass
    return {a for a in found if not a.is_loopback}


def _fqdn(hostname: str, timeout: float = 2.0) -> str | None:
    """getfqdn() may wait on a DNS that never answers; never let it stall startup."""
    result: list[str] = []

    def lookup() -> None:
        with contextlib.suppress(OSError):
            result.append(socket.getfqdn(hostname))

    worker = threading.Thread(target=lookup, name="fqdn-lookup", daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else None


def _parse_addresses(values: Iterable[str]) -> set[IPAddress]:
    out: set[IPAddress] = set()
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                out.add(ipaddress.ip_address(part))
            except ValueError:
                raise HostEntryError(f"{_quote(part)} is not a valid IP address") from None
    return out


def detect_identity(
    host_ip: str | None = None,
    hostname: str | None = None,
    environ: dict[str, str] | None = None,
) -> HostIdentity:
    """This machine's identity; explicit values (flags, then environment) replace detection.

    `host_ip` may list several addresses separated by commas.
    """
    env = os.environ if environ is None else environ
    host_ip = host_ip or env.get("RECONCILER_HOST_IP") or None
    hostname = hostname or env.get("RECONCILER_HOSTNAME") or None
    addresses = _parse_addresses([host_ip]) if host_ip else _interface_addresses()
    if hostname:
        names = _names(hostname)
    else:
        own = socket.gethostname()
        names = _names(own)
        fqdn = _fqdn(own)
        if fqdn:
            names |= _names(fqdn)
    return HostIdentity(addresses=frozenset(addresses), names=frozenset(names))


def identity_for(host: str) -> HostIdentity:
    """The identity `plan --host H` reasons about: H is an address or a hostname."""
    try:
        return HostIdentity(addresses=frozenset({ipaddress.ip_address(host)}))
    except ValueError:
        return HostIdentity(names=frozenset(_names(host)))
