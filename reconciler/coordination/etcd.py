"""The only engine: etcd v3 through its JSON gateway, with the `etcd3gw` client.

One `EtcdEngine` per thread (its HTTP session is not shared). Every call has a time-out;
any failure to get an answer (refused, reset, timed out, 5xx) raises `Unavailable`, and
the next call tries the next endpoint. etcd 3.4 (Debian's etcd-server) serves the
gateway at /v3/ (3.3 at /v3beta/); etcd3gw finds the path from /version.

Values are JSON; keys and values travel base64-encoded, as the gateway wants.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reconciler.coordination.model import EtcdConfig


class Unavailable(Exception):
    """etcd could not be asked, or did not answer in time."""


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: Any  # decoded JSON (None if not JSON)
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True)
class Put:
    key: str
    value: Any
    lease: int | None = None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _range_end(prefix: str) -> str:
    """The end of the range of keys that start with `prefix` (its last byte plus one)."""
    raw = bytearray(prefix.encode("utf-8"))
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode("ascii")


def _kv(item: dict[str, Any]) -> KeyValue:
    raw = _unb64(item.get("value", ""))
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        value = None
    return KeyValue(
        key=_unb64(item["key"]).decode("utf-8", "replace"),
        value=value,
        create_revision=int(item.get("create_revision", 0)),
        mod_revision=int(item.get("mod_revision", 0)),
        lease=int(item.get("lease", 0)),
    )


def _put_op(put: Put) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": _b64(put.key),
        "value": _b64(json.dumps(put.value, separators=(",", ":"))),
    }
    if put.lease:
        body["lease"] = put.lease
    return {"request_put": body}


@dataclass(frozen=True)
class CreateResult:
    created: bool
    revision: int  # the store's revision after the transaction (the key's, if created)
    existing: KeyValue | None  # the key as found, when not created


class EtcdEngine:
    def __init__(self, config: EtcdConfig) -> None:
        import etcd3gw  # imported here: only a controller with --etcd pays for it

        self._etcd3gw = etcd3gw
        self.config = config
        self._clients: list[Any] = []
        for url in config.endpoints:
            parts = urlsplit(url if "://" in url else f"http://{url}")
            client = etcd3gw.client(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 2379,
                protocol=parts.scheme or "http",
                ca_cert=config.cacert,
                cert_key=config.key,
                cert_cert=config.cert,
            )
            # No proxy from the environment, and REQUESTS_CA_BUNDLE must not replace
            # --etcd-cacert (requests lets it win over the session's own CA file).
            client.session.trust_env = False
            self._clients.append(client)
        self._current = 0

    def close(self) -> None:
        for client in self._clients:
            client.session.close()

    # --- one request --------------------------------------------------------------------

    def call(self, path: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """POST to the gateway of the current endpoint; on failure, the next call goes to
        the next endpoint."""
        client = self._clients[self._current]
        client.timeout = timeout
        try:
            return dict(client.post(client.get_url(path), json=payload))
        except (self._etcd3gw.exceptions.Etcd3Exception, OSError, ValueError) as exc:
            self._current = (self._current + 1) % len(self._clients)
            raise Unavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        except Exception as exc:  # requests' own errors that etcd3gw does not wrap
            self._current = (self._current + 1) % len(self._clients)
            raise Unavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None

    # --- leases -------------------------------------------------------------------------

    def grant(self, ttl: int, timeout: float) -> tuple[int, int]:
        """A new lease: (id, granted TTL)."""
        out = self.call("/lease/grant", {"TTL": ttl}, timeout)
        if out.get("error"):
            raise Unavailable(str(out["error"])[:200])
        return int(out["ID"]), int(out.get("TTL", ttl))

    def keepalive(self, lease: int, timeout: float) -> int:
        """Renew; the TTL left (<= 0: the lease is gone)."""
        out = self.call("/lease/keepalive", {"ID": lease}, timeout)
        result = out.get("result", out)
        return int(result.get("TTL", 0))

    def revoke(self, lease: int, timeout: float) -> None:
        self.call("/kv/lease/revoke", {"ID": lease}, timeout)

    # --- keys ---------------------------------------------------------------------------

    def create(
        self, key: str, value: Any, lease: int, timeout: float, also: Sequence[Put] = ()
    ) -> CreateResult:
        """Create `key` on `lease` only if it does not exist (and the puts of `also` with
        it); otherwise read it. One transaction."""
        k = _b64(key)
        txn = {
            "compare": [{"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
            "success": [_put_op(Put(key, value, lease)), *(_put_op(p) for p in also)],
            "failure": [{"request_range": {"key": k}}],
        }
        out = self.call("/kv/txn", txn, timeout)
        revision = int(out.get("header", {}).get("revision", 0))
        if out.get("succeeded"):
            return CreateResult(True, revision, None)
        kvs = (out.get("responses") or [{}])[0].get("response_range", {}).get("kvs") or []
        return CreateResult(False, revision, _kv(kvs[0]) if kvs else None)

    def put_all(self, puts: Sequence[Put], timeout: float) -> int:
        """Several puts in one transaction (at most 128, etcd's default limit)."""
        out = self.call("/kv/txn", {"success": [_put_op(p) for p in puts]}, timeout)
        return int(out.get("header", {}).get("revision", 0))

    def get_prefix(
        self, prefix: str, timeout: float, limit: int = 0, keys_only: bool = False
    ) -> list[KeyValue]:
        return self._range(_b64(prefix), _range_end(prefix), timeout, limit, keys_only)

    def get_range(
        self, start: str, end: str, timeout: float, limit: int = 0, keys_only: bool = False
    ) -> list[KeyValue]:
        """Keys in [start, end), in key order."""
        return self._range(_b64(start), _b64(end), timeout, limit, keys_only)

    def _range(
        self, key: str, range_end: str, timeout: float, limit: int, keys_only: bool
    ) -> list[KeyValue]:
        """A range request; key and range_end base64-encoded, as the gateway wants them."""
        body: dict[str, Any] = {"key": key, "range_end": range_end}
        if limit:
            body["limit"] = limit
        if keys_only:
            body["keys_only"] = True
        out = self.call("/kv/range", body, timeout)
        return [_kv(item) for item in out.get("kvs") or []]

    def get(self, key: str, timeout: float) -> KeyValue | None:
        out = self.call("/kv/range", {"key": _b64(key)}, timeout)
        kvs = out.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def delete_range(self, start: str, end: str, timeout: float) -> int:
        """Delete keys in [start, end)."""
        body = {"key": _b64(start), "range_end": _b64(end)}
        out = self.call("/kv/deleterange", body, timeout)
        return int(out.get("deleted", 0))

    def delete_if(self, key: str, create_revision: int, timeout: float) -> bool:
        """Delete `key` only if it is still the one created at `create_revision`."""
        k = _b64(key)
        txn = {
            "compare": [
                {"key": k, "result": "EQUAL", "target": "CREATE",
                 "create_revision": create_revision}
            ],
            "success": [{"request_delete_range": {"key": k}}],
        }
        return bool(self.call("/kv/txn", txn, timeout).get("succeeded"))
