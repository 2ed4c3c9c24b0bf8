"""Host inventories for `get --inventory FILE`: which machines a fleet has, without etcd.

Two formats, told apart by their content:

- a hosts file: one host a line, `NAME [IP,...]` (addresses separated by commas or
  spaces), `#` comments;
- an Ansible INI inventory: `[group]` sections, host lines `NAME key=value ...` where
  `ansible_host=IP` gives the address; `[group:vars]` and `[group:children]` sections hold
  no hosts; `web[01:03]` and `db-[a:c]` ranges are expanded as Ansible does.

Each host becomes a HostIdentity (its name, short name and addresses) that the `hosts`
entries of the tasks are matched against, as on the host itself.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import string
from dataclasses import dataclass

from reconciler.hosts import HostIdentity

MAX_HOSTS = 100_000
_RANGE = re.compile(r"\[([0-9a-z]+):([0-9a-z]+)(?::(\d+))?\]")


class InventoryError(ValueError):
    """A line that is not a host, with its line number."""


@dataclass(frozen=True)
class InventoryHost:
    name: str
    addresses: tuple[str, ...] = ()

    def identity(self) -> HostIdentity:
        names = set()
        name = self.name.strip().lower().rstrip(".")
        if name:
            names = {name, name.split(".", 1)[0]}
        addrs = set()
        for a in self.addresses:
            try:
                addrs.add(ipaddress.ip_address(a))
            except ValueError:
                names.add(a.lower())  # ansible_host may be a DNS name
        return HostIdentity(addresses=frozenset(addrs), names=frozenset(names))


def _expand(pattern: str, lineno: int) -> list[str]:
    """Ansible's host ranges: web[01:03] -> web01, web02, web03; [a:c] -> a, b, c."""
    m = _RANGE.search(pattern)
    if m is None:
        return [pattern]
    lo, hi, step = m.group(1), m.group(2), int(m.group(3) or 1)
    head, tail = pattern[: m.start()], pattern[m.end():]
    if lo.isdigit() and hi.isdigit():
        width = len(lo) if lo.startswith("0") else 0
        values = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1, max(step, 1))]
    elif len(lo) == 1 and len(hi) == 1 and lo.isalpha() and hi.isalpha():
        letters = string.ascii_lowercase
        values = list(letters[letters.index(lo): letters.index(hi) + 1: max(step, 1)])
    else:
        raise InventoryError(f"line {lineno}: cannot expand the range in {pattern!r}")
    out: list[str] = []
    for v in values:
        out.extend(_expand(head + v + tail, lineno))
        if len(out) > MAX_HOSTS:
            raise InventoryError(f"line {lineno}: more than {MAX_HOSTS} hosts")
    return out


def _is_ansible(lines: list[str]) -> bool:
    for line in lines:
        text = line.strip()
        if text.startswith("[") and text.endswith("]"):
            return True
        if "=" in text and not text.startswith(("#", ";")):
            return True
    return False


def parse_inventory(text: str) -> list[InventoryHost]:
    """The hosts of an inventory, in file order, each once (later lines add addresses)."""
    lines = text.splitlines()
    ansible = _is_ansible(lines)
    found: dict[str, list[str]] = {}
    in_hosts = True
    for lineno, line in enumerate(lines, 1):
        text_ = line.strip()
        if not text_ or text_.startswith(("#", ";")):
            continue
        if ansible and text_.startswith("[") and text_.endswith("]"):
            in_hosts = ":" not in text_  # [g:vars], [g:children] hold no hosts
            continue
        if not in_hosts:
            continue
        if ansible:
            try:
                words = shlex.split(text_, comments=True)
            except ValueError as exc:
                raise InventoryError(f"line {lineno}: {exc}") from None
            if not words:
                continue
            names = _expand(words[0], lineno)
            addrs = [w.split("=", 1)[1] for w in words[1:] if w.startswith("ansible_host=")]
        else:
            words = text_.split("#", 1)[0].split(None, 1)
            names = [words[0]]
            addrs = [a for a in re.split(r"[,\s]+", words[1]) if a] if len(words) > 1 else []
            for a in addrs:
                try:
                    ipaddress.ip_address(a)
                except ValueError:
                    raise InventoryError(
                        f"line {lineno}: {a!r} is not an IP address (NAME [IP,...])"
                    ) from None
        for name in names:
            seen = found.setdefault(name, [])
            seen.extend(a for a in addrs if a not in seen)
        if len(found) > MAX_HOSTS:
            raise InventoryError(f"more than {MAX_HOSTS} hosts")
    return [InventoryHost(n, tuple(a)) for n, a in found.items()]
