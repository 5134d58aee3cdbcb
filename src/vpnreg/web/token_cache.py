"""The API tokens this process has checked, kept for a few seconds.

A thousand gateways long-polling the feed send a request each every second or so, each with
the same token it sent before; asking the database every time cost a thread hop, a pooled
connection and a query per request, most of the server's work (bench_gateway_fanout). A token
found live is kept here for `ttl_s` (VPNREG_TOKEN_CACHE_S, default 10 s; 0 turns the cache off)
and answered on the event loop.

Nothing outlives what ends it: an entry is dropped when the process's credentials generation
moves (a token revoked or a user changed: at once in the process that commits it, and on
PostgreSQL in every other server process through NOTIFY; vpnreg.registry.credential_changes),
when the token's own expiry passes, and after `ttl_s` in any case (which bounds how long
another process's change takes on SQLite, which has no NOTIFY). Unknown and refused tokens are
never kept: a token created a moment ago works at once.

Checked again ahead of time: once an entry is half its `ttl_s` old, the next request that finds
it still gets it, and `claim_refresh` hands one caller (one per entry) the job of checking the
token in the database again in the background (web.auth): a gateway's token then never expires
from the cache under its requests. Without this, every request that came while an entry had
just expired went the slow way; a thousand gateways sharing one token, or all asking at the
same moment after a publish, sent hundreds of requests through the database at once every
`ttl_s` (bench_gateway_fanout).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vpnreg.registry import credential_changes

__all__ = ["TokenCache"]

#: Entries beyond this are not added until the cache empties (a bound on memory against a
#: flood of distinct valid tokens, which only an admin can create).
MAX_ENTRIES = 100_000
#: The share of `ttl_s` after which an entry is checked again in the background.
REFRESH_AFTER = 0.5

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    stored: float
    generation: int
    expires_at: dt.datetime | None


def _key(token: str) -> bytes:
    # a digest, so the cache holds no usable secret
    return hashlib.sha256(token.encode()).digest()


class TokenCache(Generic[T]):
    """What a token resolved to (`T`: the web app's Principal), for `ttl_s` seconds."""

    def __init__(self, ttl_s: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._entries: dict[bytes, _Entry[T]] = {}
        self._refreshing: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._ttl_s > 0

    def generation(self) -> int:
        """Take this before checking a token in the database, and give it to `put`: a change
        committed meanwhile then makes the entry stale at once."""
        return credential_changes.generation()

    def get(self, token: str, now: dt.datetime) -> T | None:
        """What `token` resolved to, while that still holds; None to ask the database."""
        if not self.enabled:
            return None
        key = _key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        fresh = (
            entry.generation == credential_changes.generation()
            and self._monotonic() - entry.stored < self._ttl_s
            and (entry.expires_at is None or now < entry.expires_at)
        )
        if fresh:
            return entry.value
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
        return None

    def claim_refresh(self, token: str) -> bool:
        """True, once, when `token`'s entry is old enough to be checked again (REFRESH_AFTER):
        the caller then checks it and calls `put` (still live) or `forget` (not), and `release`
        in any case. False while another caller has it, or when the entry is young or gone."""
        if not self.enabled:
            return False
        key = _key(token)
        entry = self._entries.get(key)
        if entry is None or self._monotonic() - entry.stored < self._ttl_s * REFRESH_AFTER:
            return False
        with self._lock:
            if key in self._refreshing:
                return False
            self._refreshing.add(key)
        return True

    def release(self, token: str) -> None:
        """The check `claim_refresh` handed out is over."""
        with self._lock:
            self._refreshing.discard(_key(token))

    def forget(self, token: str) -> None:
        """Drop `token`'s entry (checked again and found no longer live)."""
        with self._lock:
            self._entries.pop(_key(token), None)

    def put(self, token: str, value: T, *, generation: int, expires_at: dt.datetime | None) -> None:
        """Keep what the database said of a live `token` (checked at `generation`)."""
        if not self.enabled:
            return
        entry = _Entry(value, self._monotonic(), generation, expires_at)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[_key(token)] = entry

    def __len__(self) -> int:
        return len(self._entries)
