"""`--http HOST:PORT`: parsing it, and the one address to bind."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any


def parse_http_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``; IPv6 as ``[::1]:9100``.

    Raises ValueError for a missing host (``:9100``: binding every interface must be
    asked for, as ``0.0.0.0:9100`` or ``[::]:9100``), a missing or bad port, or an
    IPv6 address without brackets.
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:9100")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9100")
    if not host:
        raise ValueError(
            f"{text!r}: the host is missing; use 127.0.0.1:PORT, or 0.0.0.0:PORT for all"
        )
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"{text!r}: the port must be a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{text!r}: the port must be at most 65535")
    return host, port


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The one address to bind: a literal as given, a name's first resolution."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"cannot resolve {host!r}") from None
        family, _, _, _, sockaddr = infos[0]
        return family, sockaddr
    if ip.version == 6:
        return socket.AF_INET6, (host, port, 0, 0)
    return socket.AF_INET, (host, port)
