"""The etcd options of `apply`, `fleet` and `get`: --etcd, TLS files, --fleet, the TTL."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re

from reconciler.coordination.model import (
    DEFAULT_FLEET,
    DEFAULT_LEASE_TTL_S,
    MAX_LEASE_TTL_S,
    MIN_LEASE_TTL_S,
    EtcdConfig,
)

ENDPOINTS_ENV = "RECONCILER_ETCD_ENDPOINTS"
_FLEET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def add_etcd(parser: argparse.ArgumentParser, lease: bool = False) -> None:
    g = parser.add_argument_group("fleet coordination (etcd v3)")
    g.add_argument("--etcd", metavar="URL[,URL...]",
                   help=f"etcd endpoints, e.g. http://10.0.0.5:2379 (env {ENDPOINTS_ENV})")
    g.add_argument("--etcd-cacert", metavar="FILE", help="CA certificate of the etcd servers")
    g.add_argument("--etcd-cert", metavar="FILE", help="client certificate for etcd")
    g.add_argument("--etcd-key", metavar="FILE", help="client key for etcd")
    g.add_argument("--fleet", metavar="NAME", default=DEFAULT_FLEET,
                   help="fleet name: keys live under /reconciler/NAME/ (default: default)")
    if lease:
        g.add_argument("--etcd-lease-ttl", metavar="SECONDS", type=int,
                       default=DEFAULT_LEASE_TTL_S,
                       help="TTL of this controller's lease: a placement: one daemon moves "
                       "to another host within 2 x TTL of this host's death (default 10)")


def etcd_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> EtcdConfig | None:
    """The configuration asked for, None without --etcd (nor the environment variable);
    a usage error (exit 2) for a bad value."""
    raw = args.etcd or os.environ.get(ENDPOINTS_ENV, "")
    endpoints = tuple(e.strip() for e in raw.split(",") if e.strip())
    if not endpoints:
        for opt in ("etcd_cacert", "etcd_cert", "etcd_key"):
            if getattr(args, opt, None):
                parser.error(f"--{opt.replace('_', '-')} needs --etcd")
        return None
    if importlib.util.find_spec("etcd3gw") is None:
        parser.error("--etcd needs the etcd client: pip install 'reconciler[etcd]'")
    for url in endpoints:
        if not re.match(r"^(https?://)?[\w.\-\[\]:]+(:\d+)?/?$", url):
            parser.error(f"--etcd: {url!r} is not an endpoint URL (http://HOST:PORT)")
    if bool(args.etcd_cert) != bool(args.etcd_key):
        parser.error("--etcd-cert and --etcd-key go together")
    if not _FLEET_NAME.match(args.fleet):
        parser.error(f"--fleet: {args.fleet!r} must be letters, digits, '-', '_' or '.'")
    ttl = getattr(args, "etcd_lease_ttl", DEFAULT_LEASE_TTL_S)
    if not MIN_LEASE_TTL_S <= ttl <= MAX_LEASE_TTL_S:
        parser.error(f"--etcd-lease-ttl: {ttl} is not within {MIN_LEASE_TTL_S}-{MAX_LEASE_TTL_S}")
    return EtcdConfig(
        endpoints=endpoints,
        fleet=args.fleet,
        lease_ttl_s=ttl,
        cacert=args.etcd_cacert,
        cert=args.etcd_cert,
        key=args.etcd_key,
    )
