"""A fake feed server for the client tests: the HTTP contract of docs/feed-client.md served by an
httpx.MockTransport from a real core.feed.FeedHistory, with real signed documents."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vpnreg.clock import FrozenClock
from vpnreg.core.feed import (
    COMPACT_MEDIA_TYPE,
    AllowlistEntry,
    EnforcementMode,
    FeedHistory,
    HistoryDelta,
    dump_document,
    key_id,
    sign_compact_snapshot,
    sign_delta,
    sign_snapshot_bytes,
)

SESSION = "0123456789abcdef0123456789abcdef"
OTHER_SESSION = "fedcba9876543210fedcba9876543210"
TOKEN = "gateway-token-1"
VALIDITY = dt.timedelta(days=1)


def fixed_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


KEY = fixed_key("feed-client-tests")
OTHER_KEY = fixed_key("someone-else")
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}


def entry(prefix: str, registration_id: int = 1, *peers: str) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=ipaddress.ip_network(prefix),
        peers=tuple(ipaddress.ip_network(p) for p in peers),
        registration_id=registration_id,
        valid_until=dt.datetime(2027, 1, 31, 19, tzinfo=dt.UTC),
    )


BASE_ENTRIES = (
    entry("192.0.2.0/24", 1),
    entry("198.51.100.0/24", 2, "203.0.113.0/24"),
    entry("2001:db8::/32", 3),
)

NEW_ENTRY = entry("203.0.113.0/24", 4)


def snapshot_bytes(
    history: FeedHistory,
    now: dt.datetime,
    *,
    key: Ed25519PrivateKey = KEY,
    validity: dt.timedelta = VALIDITY,
) -> bytes:
    snap = history.snapshot()
    return sign_snapshot_bytes(
        session_id=snap.session_id,
        serial=snap.serial,
        entries=snap.entries,
        mode=snap.mode,
        created=snap.created,
        expires=now + validity,
        private_key=key,
    )


def compact_bytes(history: FeedHistory, now: dt.datetime, *, key: Ed25519PrivateKey = KEY) -> bytes:
    """The compact snapshot (ADR 0011) of the same state snapshot_bytes signs."""
    snap = history.snapshot()
    return sign_compact_snapshot(
        session_id=snap.session_id,
        serial=snap.serial,
        entries=snap.entries,
        mode=snap.mode,
        created=snap.created,
        expires=now + VALIDITY,
        private_key=key,
    )


def delta_document(
    session_id: str,
    step: HistoryDelta,
    now: dt.datetime,
    *,
    key: Ed25519PrivateKey = KEY,
    set_hash: str | None = None,
    validity: dt.timedelta = VALIDITY,
) -> dict[str, object]:
    return sign_delta(
        session_id=session_id,
        serial=step.serial,
        previous_serial=step.previous_serial,
        added=step.added,
        removed=step.removed,
        set_hash=set_hash if set_hash is not None else step.set_hash,
        mode=step.mode,
        created=step.created,
        expires=now + validity,
        private_key=key,
    )


Handler = Callable[[httpx.Request], httpx.Response]


def streamed(response: httpx.Response) -> httpx.Response:
    """The response with its body unread, as from a real server: httpx.Response(content=bytes)
    is read (and gzip decoded) when built, which a client reading the raw stream cannot see."""
    if not isinstance(response.stream, httpx.ByteStream):
        return response  # already a stream (a generator body)
    return httpx.Response(response.status_code, headers=response.headers, stream=response.stream)


@dataclass
class FakeFeedServer:
    """Serves one FeedHistory under /feed/v1; documents are signed when served (expires = now +
    validity). `override` maps a path to a handler that answers instead (for faults)."""

    history: FeedHistory
    clock: FrozenClock
    key: Ed25519PrivateKey = KEY
    token: str = TOKEN
    validity: dt.timedelta = VALIDITY
    gzip_snapshots: bool = False
    #: Offer the compact snapshot (ADR 0011) to clients whose Accept names it.
    compact_snapshots: bool = False
    override: dict[str, Handler] = field(default_factory=dict)
    #: Long-poll /delta when asked to wait (False: a server before that form, which ignores
    #: `wait` there and answers at once).
    delta_waits: bool = True
    requests: list[httpx.Request] = field(default_factory=list)

    base = "https://registry.example/feed/v1"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: streamed(self.handle(request)))

    def paths(self) -> list[str]:
        return [r.url.path.removeprefix("/feed/v1") for r in self.requests]

    def etag(self) -> str:
        return f'"{self.history.session_id}-{self.history.serial}"'

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/feed/v1")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"detail": "gateway token required"})
        if path in self.override:
            return self.override[path](request)
        if path == "/snapshot":
            return self._snapshot(request)
        if path == "/delta":
            return self._delta(request)
        if path == "/notify":
            return self._notify(request)
        return httpx.Response(404)

    def _snapshot(self, request: httpx.Request) -> httpx.Response:
        etag = self.etag()
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        if self.compact_snapshots and COMPACT_MEDIA_TYPE in request.headers.get("accept", ""):
            body = compact_bytes(self.history, self.clock.now(), key=self.key)
            headers = {"ETag": etag, "Content-Type": COMPACT_MEDIA_TYPE}
        else:
            body = snapshot_bytes(
                self.history, self.clock.now(), key=self.key, validity=self.validity
            )
            headers = {"ETag": etag, "Content-Type": "application/json"}
        if self.gzip_snapshots:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return httpx.Response(200, content=body, headers=headers)

    def _delta(self, request: httpx.Request) -> httpx.Response:
        since = int(request.url.params["since"])
        session = request.url.params.get("session")
        current = session == self.history.session_id and since == self.history.serial
        if self.delta_waits and "wait" in request.url.params and current:
            # A real server would hold the request for `wait` seconds first.
            return httpx.Response(204)
        steps = self.history.delta_since(since) if session == self.history.session_id else None
        if steps is None:
            return httpx.Response(
                200,
                json={
                    "reset": True,
                    "session_id": self.history.session_id,
                    "serial": self.history.serial,
                },
            )
        now = self.clock.now()
        docs = [delta_document(self.history.session_id, s, now, key=self.key) for s in steps]
        return httpx.Response(200, json={"deltas": docs})

    def _notify(self, request: httpx.Request) -> httpx.Response:
        since = int(request.url.params["since"])
        session = request.url.params.get("session")
        if session != self.history.session_id or self.history.serial > since:
            return httpx.Response(
                200,
                json={"session_id": self.history.session_id, "serial": self.history.serial},
            )
        # A real server would hold the request for `wait` seconds first.
        return httpx.Response(204)


def deltas_response(*documents: dict[str, object]) -> Handler:
    body = b'{"deltas":[' + b",".join(dump_document(d) for d in documents) + b"]}"
    return lambda _request: httpx.Response(200, content=body)


def raw_response(body: bytes, status: int = 200) -> Handler:
    return lambda _request: httpx.Response(status, content=body)


def new_history(
    now: dt.datetime, *, session_id: str = SESSION, max_deltas: int = 256
) -> FeedHistory:
    return FeedHistory.new(
        session_id=session_id,
        now=now,
        entries=BASE_ENTRIES,
        mode=EnforcementMode.enforce_all(),
        max_deltas=max_deltas,
    )


def later(clock: FrozenClock, seconds: float = 60) -> dt.datetime:
    """Move the shared clock on, as time passes between commits and polls."""
    return clock.advance(dt.timedelta(seconds=seconds))
