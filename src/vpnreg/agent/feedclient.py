"""The gateway's feed client: fetch, verify and hold the signed allowlist (docs/feed-client.md).

One FeedClient per feed source: an http(s) feed base URL (the registry's API), a file holding a
signed snapshot, or a static feed (ADR 0009): the URL of its `notification.json`, or the directory
holding it, whose snapshot and delta files are checked against the notification's hashes before
they are parsed and then go through the same verification and acceptance as the API's documents.
Where the source offers it, a snapshot comes in the compact form of ADR 0011 (the API's `Accept`,
the static feed's `.compact.gz` twin, a compact file), verified with one hash over its records.
Every document is verified completely before anything changes; what is held is persisted
atomically in a state directory (vpnreg.agent.feedstore) and re-verified on load, and is never
emptied because of errors or staleness. Timers follow RFC 8210 section 6 (refresh, retry, expire).

Hostile or broken sources: a response or file is read as a stream and refused (DocumentTooLarge)
beyond `max_bytes`, counted after gzip decompression, before it is ever whole in memory; a body
that trickles in is abandoned after `_TRANSFER_S`; pathological JSON is refused like any other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import CollectorRegistry, Counter, Gauge

from vpnreg.agent.feedstore import FeedStore, StoredFeed, StoredStateError
from vpnreg.clock import Clock
from vpnreg.core.feed import (
    COMPACT_MEDIA_TYPE,
    DocumentTooLarge,
    EnforcementMode,
    FeedError,
    FeedState,
    Freshness,
    HashMismatch,
    MalformedDocument,
    Mode,
    TruncatedDocument,
    VerifiedDelta,
    VerifiedSnapshot,
    VersionMismatch,
    apply_delta,
    check_not_older,
    dump_document,
    is_compact,
    key_id,
    load_json,
    verify_compact,
    verify_document,
)
from vpnreg.core.feed.notification import (
    FileRef,
    Notification,
    compact_sidecar,
    verify_notification,
)
from vpnreg.feedkeys import load_public_key

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FeedClient",
    "FeedMetrics",
    "PollResult",
    "PollStatus",
    "StoredStateError",
    "Timers",
    "is_static_feed",
    "load_public_keys",
]

_LOG = logging.getLogger(__name__)
#: Seconds added to a long poll's wait before the HTTP read times out.
_READ_MARGIN_S = 10.0
_CONNECT_TIMEOUT_S = 10.0
#: A waiting /delta answered with this at once comes from a server that does not wait.
_EMPTY_DELTAS = b'{"deltas":[]}'
#: Longest time to receive one response once its wait (long poll) is over: a server that
#: trickles a body in, a few bytes per read timeout, is given up on (unreachable) after this.
_TRANSFER_S = 600.0
#: Largest document or response accepted, counted after decompression. A snapshot costs about
#: 140 bytes per v2 entry (more with peers): a million entries is about 140 MB.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
#: Decompressed bytes produced per step, so a gzip bomb never expands past the cap in memory.
_INFLATE_STEP = 256 * 1024
#: Clock for _TRANSFER_S (module level so tests can drive it).
_monotonic = time.monotonic


@dataclasses.dataclass(frozen=True)
class Timers:
    """RFC 8210 section 6 timers, in seconds."""

    #: How often to poll when nothing is pushed (for URLs: how long a long poll waits).
    refresh_s: float = 60.0
    #: How long to wait after a failed or refused fetch.
    retry_s: float = 10.0
    #: No fresh verified feed for this long (or the held copy's signed expiry passed): stale.
    #: Also the renewal window: a URL client re-fetches the full snapshot when its held copy
    #: expires within this time, to pick up a re-signed copy of an unchanged set.
    expire_s: float = 7200.0
    on_stale: Literal["keep", "dry-run"] = "keep"

    def __post_init__(self) -> None:
        if self.refresh_s <= 0 or self.retry_s <= 0 or self.expire_s <= 0:
            raise ValueError("refresh, retry and expire timers must be positive")
        if self.on_stale not in ("keep", "dry-run"):
            raise ValueError("on_stale must be 'keep' or 'dry-run'")


class PollStatus(StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


@dataclasses.dataclass(frozen=True)
class PollResult:
    status: PollStatus
    #: The held state after the poll (never emptied by errors).
    state: FeedState | None
    #: One line, e.g. "refused feed document: BadSignature: signature does not verify ...".
    error: str | None = None
    #: Class name of the FeedError, or "http", "io".
    error_kind: str | None = None
    #: One line when the state directory had to be repaired on load (an unusable state.json:
    #: recovered from the copy, or started over), else None.
    notice: str | None = None


class FeedMetrics:
    """The client's Prometheus metrics, registered in the registry given (tests use their own)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.serial = Gauge(
            "feed_serial", "Serial of the allowlist feed state held", registry=registry
        )
        self.age_seconds = Gauge(
            "feed_age_seconds",
            "Seconds since the held feed state was created by the registry",
            registry=registry,
        )
        self.stale = Gauge(
            "feed_stale", "1 when the expire timer ran out without a fresh feed", registry=registry
        )
        self.refused = Counter(
            "feed_refused",
            "Feed documents refused, by error kind",
            ["kind"],
            registry=registry,
        )
        self.unreachable = Counter(
            "feed_unreachable",
            "Polls that could not reach the feed (network, HTTP status, file I/O)",
            ["kind"],
            registry=registry,
        )
        self.updates = Counter("feed_updates", "Verified feed updates applied", registry=registry)
        self.last_success = Gauge(
            "feed_last_success_timestamp_seconds",
            "Unix time the feed was last reached and verified",
            registry=registry,
        )


class _Unreachable(Exception):
    """The feed could not be reached (network, HTTP status, file system)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key of every feed.pub file given (PEM or raw base64)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        key = load_public_key(path)
        keys[key_id(key)] = key
    return keys


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


#: The file a static feed's directory (or URL) names its state in (ADR 0009).
NOTIFICATION_FILE = "notification.json"


def is_static_feed(source: str) -> bool:
    """Whether `source` names a static feed (its notification.json URL, or its directory)."""
    return _static_location(source) is not None


def _static_location(source: str) -> str | Path | None:
    """Where a static feed's notification is (its URL, or the file in its directory), or None
    when `source` is the API's base URL or a snapshot file."""
    if _is_url(source):
        path = httpx.URL(source).path
        return source if path.endswith(".json") else None
    local = Path(source.removeprefix("file://"))
    if local.is_dir():
        return local / NOTIFICATION_FILE
    return local if local.name == NOTIFICATION_FILE else None


def _json_body(raw: bytes, what: str) -> Any:
    """Parse an unsigned JSON envelope (a refusal, never another exception, on bad input)."""
    return load_json(raw, what)


@dataclasses.dataclass(frozen=True)
class _Answer:
    status_code: int
    body: bytes
    headers: httpx.Headers = dataclasses.field(default_factory=httpx.Headers)


def _inflate(data: bytes, decompressor: Any) -> Iterator[bytes]:
    """Decompress `data` in steps of at most _INFLATE_STEP bytes of output (a full step may
    leave output pending inside zlib even when all input was taken: drain it too)."""
    try:
        piece = decompressor.decompress(data, _INFLATE_STEP)
        while True:
            yield piece
            tail = decompressor.unconsumed_tail
            if decompressor.eof or (not tail and len(piece) < _INFLATE_STEP):
                return
            piece = decompressor.decompress(tail, _INFLATE_STEP)
    except zlib.error as exc:
        raise MalformedDocument(f"the gzip body is corrupt: {exc}") from None


class FeedClient:
    """Fetches, verifies and holds one allowlist feed (see the module docstring)."""

    def __init__(
        self,
        *,
        source: str,
        trusted: Mapping[str, Ed25519PublicKey],
        state_dir: Path,
        clock: Clock,
        token: str | None = None,
        timers: Timers | None = None,
        transport: httpx.BaseTransport | None = None,
        metrics: FeedMetrics | None = None,
        logger: logging.Logger | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        compact: bool = True,
    ) -> None:
        if not trusted:
            raise ValueError("a feed client needs at least one trusted public key")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._max_bytes = max_bytes
        #: Ask for the compact snapshot (ADR 0011) where the source offers one.
        self._compact = compact
        self._source = source
        self._trusted = dict(trusted)
        self._store = FeedStore(state_dir)
        self._clock = clock
        self._timers = timers if timers is not None else Timers()
        self._metrics = metrics
        self._log = logger if logger is not None else _LOG
        self._state: FeedState | None = None
        self._verified_at: dt.datetime | None = None
        self._loaded = False
        self._was_stale: bool | None = None
        #: What load repaired in the state directory, until a poll reports it.
        self._notice: str | None = None
        #: (inode, mtime_ns, size) of the feed file last read; None until read.
        self._file_id: tuple[int, int, int] | None = None
        self._http: httpx.Client | None = None
        #: Whether the server long-polls /delta itself (else /notify, then /delta).
        self._delta_waits = True
        #: A static feed's notification (URL or file); None for the API and snapshot files.
        self._static = _static_location(source)
        #: The notification's ETag and Last-Modified, kept once a poll of it succeeded.
        self._validators: dict[str, str] = {}
        if self._static is not None:
            if isinstance(self._static, str):
                # A token, when given, is sent too: a web server may guard the files with it.
                static_headers = {"Accept-Encoding": "gzip"}
                if token:
                    static_headers["Authorization"] = f"Bearer {token}"
                self._http = httpx.Client(
                    headers=static_headers,
                    transport=transport,
                    timeout=httpx.Timeout(_CONNECT_TIMEOUT_S, read=self._timers.refresh_s),
                    follow_redirects=False,
                )
        elif _is_url(source):
            # Only gzip is decoded (by _read_body, bounded): refuse to be sent anything else.
            headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self._http = httpx.Client(
                base_url=source.rstrip("/"),
                headers=headers,
                transport=transport,
                timeout=httpx.Timeout(_CONNECT_TIMEOUT_S, read=self._timers.refresh_s),
                follow_redirects=False,
            )
        elif source.startswith("file://"):
            self._source = source.removeprefix("file://")

    # -- held state --------------------------------------------------------------------------

    @property
    def state(self) -> FeedState | None:
        return self._state

    @property
    def timers(self) -> Timers:
        return self._timers

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def is_url(self) -> bool:
        return self._http is not None

    @property
    def long_polls(self) -> bool:
        """Whether polls wait on the server (the API's /notify); a static feed cannot."""
        return self._http is not None and self._static is None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def load(self) -> FeedState | None:
        """The last good copy from the state directory, re-verified from scratch.

        An expired copy is kept (and the client is stale). Raises StoredStateError when the
        copy does not re-verify (edited, corrupted, older than its recorded floor, or signed by
        a key no longer trusted): remove the directory to start over. An unusable state.json
        is repaired from the copy, or the client starts over holding nothing; either is logged
        and reported by the next poll (PollResult.notice).
        """
        stored: StoredFeed | None = self._store.load(trusted=self._trusted)
        self._loaded = True
        if stored is not None and stored.notice is not None:
            self._notice = f"repaired feed state directory: {stored.notice}"
            self._log.warning("%s", self._notice)
        if stored is None or stored.state is None:
            self._state, self._verified_at = None, None
        else:
            now = self._clock.now()
            self._state = stored.state
            # A verification time in the future (clock stepped back, or an edit) counts as now.
            seen = stored.verified_at
            self._verified_at = min(seen, now) if seen is not None else None
        self._update_metrics()
        return self._state

    def stale(self) -> bool:
        """No fresh verified feed for expire_s, or the held copy's signed expiry has passed."""
        if self._state is None or self._verified_at is None:
            stale = True
        else:
            now = self._clock.now()
            elapsed = (now - self._verified_at).total_seconds()
            stale = elapsed >= self._timers.expire_s or now >= self._state.expires
        if self._metrics is not None:
            self._metrics.stale.set(1 if stale else 0)
        return stale

    def effective_mode(self) -> EnforcementMode | None:
        """The signed mode, or dry-run everywhere when stale and on_stale is "dry-run"."""
        if self._state is None:
            return None
        if self._timers.on_stale == "dry-run" and self.stale():
            return EnforcementMode(Mode.DRY_RUN)
        return self._state.mode

    # -- polling -----------------------------------------------------------------------------

    def poll(self, *, wait_s: float = 0.0) -> PollResult:
        """One fetch and verification; never raises for feed, HTTP or file errors.

        FILE: re-read when the file was replaced (inode, mtime or size changed). URL: with
        wait_s > 0 and a held state, long-poll /delta since the held serial (a server without
        that form: /notify first, then /delta); /snapshot when nothing is held, on a reset, or
        when the held copy nears its expiry.
        """
        if not self._loaded:
            try:
                self.load()
            except StoredStateError as exc:
                return self._refused(
                    exc,
                    prefix="refused held state",
                    hint=f" (remove {self._store.directory} to start over)",
                )
        result = self._poll_once(wait_s)
        if self._notice is not None:
            result = dataclasses.replace(result, notice=self._notice)
            self._notice = None
        return result

    def _poll_once(self, wait_s: float) -> PollResult:
        try:
            if self._http is None and self._static is None:
                # a directory made after the client (a mount, a first publish) is a static feed
                self._static = _static_location(self._source)
            if self._static is not None:
                status = self._poll_static(self._static)
            elif self._http is not None:
                status = self._poll_url(self._http, wait_s)
            else:
                status = self._poll_file(Path(self._source))
        except FeedError as exc:
            return self._refused(exc)
        except _Unreachable as exc:
            return self._unreachable(str(exc), exc.kind)
        self._verified_at = self._clock.now()
        if status is PollStatus.UPDATED and self._metrics is not None:
            self._metrics.updates.inc()
        self._update_metrics()
        return PollResult(status, self._state)

    def run(
        self,
        stop: threading.Event,
        on_update: Callable[[FeedState], None],
        *,
        on_staleness: Callable[[bool], None] | None = None,
    ) -> None:
        """Poll until `stop` is set, calling on_update after each UPDATED poll.

        URLs long-poll for refresh_s (a server that answers at once is polled every refresh_s);
        files are re-checked every refresh_s; after a failure the next try is in retry_s.
        `on_staleness(stale)` is called whenever staleness changes (and once at start).
        Exceptions from the callbacks propagate: the caller decides what a failed apply means.
        """
        while not stop.is_set():
            started = time.monotonic()
            wait_s = self._timers.refresh_s if self.long_polls else 0.0
            result = self.poll(wait_s=wait_s)
            if result.status is PollStatus.UPDATED and result.state is not None:
                on_update(result.state)
            stale = self.stale()
            if stale != self._was_stale:
                if stale:
                    self._log.warning(
                        "feed: stale (no fresh verified feed for %ss); on_stale=%s, holding "
                        "serial %s",
                        self._timers.expire_s,
                        self._timers.on_stale,
                        self._state.serial if self._state else "none",
                    )
                if on_staleness is not None:
                    on_staleness(stale)
                self._was_stale = stale
            if result.status is PollStatus.UPDATED:
                delay = 0.0
            elif result.status is PollStatus.UNCHANGED:
                delay = max(0.0, self._timers.refresh_s - (time.monotonic() - started))
                if not self.long_polls:
                    delay = self._timers.refresh_s
            else:
                delay = self._timers.retry_s
            stop.wait(delay)

    # -- file source -------------------------------------------------------------------------

    def _poll_file(self, path: Path) -> PollStatus:
        try:
            info = path.stat()
        except OSError as exc:
            raise _Unreachable(f"cannot read feed file {path}: {exc.strerror}", "io") from None
        file_id = (info.st_ino, info.st_mtime_ns, info.st_size)
        if file_id == self._file_id:
            return PollStatus.UNCHANGED
        raw = self._read_file(path)
        status = self._accept_snapshot(raw)
        self._file_id = file_id
        return status

    def _read_file(self, path: Path) -> bytes:
        """The file's bytes, refused beyond max_bytes without reading more than that; a FIFO or
        device is not opened for a blocking read (O_NONBLOCK, then only regular files)."""
        limit = self._max_bytes
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _Unreachable(f"cannot read feed file {path}: {exc.strerror}", "io") from None
        with os.fdopen(fd, "rb") as handle:
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise _Unreachable(f"feed file {path} is not a regular file", "io")
                if info.st_size > limit:
                    raise DocumentTooLarge(
                        f"feed file {path} holds {info.st_size} bytes, over the limit of {limit}"
                    )
                raw = handle.read(limit + 1)
            except OSError as exc:
                raise _Unreachable(f"cannot read feed file {path}: {exc.strerror}", "io") from None
        if len(raw) > limit:  # it grew between fstat and read
            raise DocumentTooLarge(f"feed file {path} is over the limit of {limit} bytes")
        return raw

    # -- URL source --------------------------------------------------------------------------

    def _get(
        self,
        http: httpx.Client,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        read_s: float | None = None,
        missing_ok: bool = False,
    ) -> _Answer:
        """One GET, its body streamed in and bounded (_read_body); only 200, 204 and 304 pass,
        and 404 too (without its body) when `missing_ok`."""
        wait = read_s if read_s is not None else self._timers.refresh_s
        timeout = httpx.Timeout(_CONNECT_TIMEOUT_S, read=wait + _READ_MARGIN_S)
        deadline = _monotonic() + wait + _READ_MARGIN_S + _TRANSFER_S
        try:
            with http.stream(
                "GET", path, params=params, headers=headers, timeout=timeout
            ) as response:
                status = response.status_code
                if status == 404 and missing_ok:
                    return _Answer(status, b"", response.headers)
                if status not in (200, 204, 304):
                    hint = " (check the gateway token)" if status in (401, 403) else ""
                    raise _Unreachable(
                        f"feed {path}: HTTP {status} {response.reason_phrase}{hint}", "http"
                    )
                body = self._read_body(response, path, deadline) if status == 200 else b""
                answered = response.headers
        except httpx.HTTPError as exc:
            raise _Unreachable(f"feed {path}: {type(exc).__name__}: {exc}", "http") from None
        return _Answer(status, body, answered)

    def _read_body(self, response: httpx.Response, path: str, deadline: float) -> bytes:
        """The decoded body, refused (DocumentTooLarge) as soon as it passes max_bytes: by its
        Content-Length before reading, else while reading, after gzip decompression (done here
        in bounded steps, so a gzip bomb is stopped at the cap). The rest is never read."""
        limit = self._max_bytes
        announced = response.headers.get("content-length", "")
        if announced.isascii() and announced.isdigit() and int(announced[:20]) > limit:
            raise DocumentTooLarge(
                f"feed {path}: the response is {announced} bytes, over the limit of {limit}"
            )
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            decompressor: Any = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif encoding in ("", "identity"):
            decompressor = None
        else:
            raise MalformedDocument(f"feed {path}: unsupported Content-Encoding {encoding!r}")
        chunks: list[bytes] = []
        size = 0
        for raw in response.iter_raw():
            pieces = [raw] if decompressor is None else _inflate(raw, decompressor)
            for piece in pieces:
                size += len(piece)
                if size > limit:
                    raise DocumentTooLarge(
                        f"feed {path}: the response passed the limit of {limit} bytes"
                        + (" once decompressed" if decompressor is not None else "")
                    )
                chunks.append(piece)
            if _monotonic() > deadline:
                raise _Unreachable(
                    f"feed {path}: the response took more than {_TRANSFER_S:g} s to arrive", "http"
                )
        if decompressor is not None:
            if not decompressor.eof:
                raise TruncatedDocument(f"feed {path}: the gzip body ends early")
            if decompressor.unused_data:
                raise MalformedDocument(f"feed {path}: data after the end of the gzip body")
        return b"".join(chunks)

    def _renewal_due(self) -> bool:
        if self._state is None:
            return True
        left = (self._state.expires - self._clock.now()).total_seconds()
        return left < self._timers.expire_s

    def _poll_url(self, http: httpx.Client, wait_s: float) -> PollStatus:
        held = self._state
        if held is None or self._renewal_due():
            return self._fetch_snapshot(http, conditional=False)
        since = {"since": str(held.serial), "session": held.session_id}
        waits = {"wait": f"{wait_s:g}"}
        if wait_s > 0 and self._delta_waits:
            # one long poll for the delta itself (docs/feed-client.md)
            response = self._get(http, "/delta", params=since | waits, read_s=wait_s)
            if response.status_code == 204:
                return PollStatus.UNCHANGED
            if response.body.replace(b" ", b"") == _EMPTY_DELTAS:
                # a server without the waiting form answered at once: long-poll /notify instead
                self._delta_waits = False
                return PollStatus.UNCHANGED
        else:
            if wait_s > 0:
                response = self._get(http, "/notify", params=since | waits, read_s=wait_s)
                if response.status_code == 204:
                    return PollStatus.UNCHANGED
            response = self._get(http, "/delta", params=since)
        body = _json_body(response.body, "delta response")
        if isinstance(body, dict) and body.get("reset") is True:
            return self._fetch_snapshot(http, conditional=True)
        if not isinstance(body, dict) or not isinstance(body.get("deltas"), list):
            raise MalformedDocument('delta response must be {"deltas": [...]} or {"reset": true}')
        try:
            raws = [dump_document(d) for d in body["deltas"]]
        except (ValueError, RecursionError):
            raise MalformedDocument(
                "delta response holds something that is not a document"
            ) from None
        try:
            return self._accept_deltas(raws)
        except VersionMismatch as exc:
            # Deltas of another entry version than the set held (ADR 0006): a snapshot
            # resynchronises; nothing was switched or persisted.
            self._log.info("%s; fetching a snapshot", exc)
            return self._fetch_snapshot(http, conditional=False)

    def _fetch_snapshot(self, http: httpx.Client, *, conditional: bool) -> PollStatus:
        headers = {}
        if self._compact:
            # A server that offers the compact form sends it; any other sends JSON (ADR 0011).
            headers["Accept"] = f"{COMPACT_MEDIA_TYPE}, application/json;q=0.5"
        if conditional and self._state is not None:
            headers["If-None-Match"] = f'"{self._state.session_id}-{self._state.serial}"'
        response = self._get(http, "/snapshot", headers=headers)
        if response.status_code == 304:
            return PollStatus.UNCHANGED
        if response.status_code != 200:
            raise _Unreachable(f"feed /snapshot: unexpected HTTP {response.status_code}", "http")
        return self._accept_snapshot(response.body)

    # -- static feed (ADR 0009) --------------------------------------------------------------

    def _poll_static(self, where: str | Path) -> PollStatus:
        """Read the notification (conditionally), verify it, then follow its deltas from the
        held serial when it lists them all, else take its snapshot. Each file's SHA-256 is
        checked against the notification before it is parsed; documents are then accepted as
        the API's are. Validators are kept only once the poll has succeeded."""
        if isinstance(where, str):
            assert self._http is not None
            response = self._get(self._http, where, headers=self._conditional_headers())
            if response.status_code == 304:
                return PollStatus.UNCHANGED
            if response.status_code != 200:
                raise _Unreachable(f"feed {where}: unexpected HTTP {response.status_code}", "http")
            raw = response.body
            validators = {
                name: response.headers[name]
                for name in ("etag", "last-modified")
                if name in response.headers
            }
            file_id = None
        else:
            file_id = self._stat(where)
            if file_id == self._file_id:
                return PollStatus.UNCHANGED
            raw, validators = self._read_file(where), {}
        held = self._state.held() if self._state is not None else None
        notification = verify_notification(
            raw, trusted=self._trusted, now=self._clock.now(), held=held
        )
        status = self._follow(notification)
        self._validators, self._file_id = validators, file_id
        return status

    def _conditional_headers(self) -> dict[str, str]:
        if self._state is None:
            return {}
        headers = {}
        if "etag" in self._validators:
            headers["If-None-Match"] = self._validators["etag"]
        if "last-modified" in self._validators:
            headers["If-Modified-Since"] = self._validators["last-modified"]
        return headers

    def _stat(self, path: Path) -> tuple[int, int, int]:
        try:
            info = path.stat()
        except OSError as exc:
            raise _Unreachable(f"cannot read feed file {path}: {exc.strerror}", "io") from None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _follow(self, notification: Notification) -> PollStatus:
        held = self._state
        if held is not None and held.session_id == notification.session_id:
            if notification.serial == held.serial:
                # The same state (verify_notification refused another set hash): only a
                # re-signed snapshot with a later expiry is worth fetching, near expiry.
                if self._renewal_due() and notification.snapshot.expires > held.expires:
                    return self._take_snapshot(notification)
                return PollStatus.UNCHANGED
            refs = notification.deltas_from(held.serial)
            if refs:
                try:
                    raws = [self._static_file(ref) for ref in refs]
                    return self._accept_deltas(raws)
                except _Unreachable as exc:
                    # A delta the notification lists is missing: the snapshot resynchronises.
                    self._log.info("%s; fetching the snapshot", exc)
                except VersionMismatch as exc:
                    self._log.info("%s; fetching the snapshot", exc)
        return self._take_snapshot(notification)

    def _take_snapshot(self, notification: Notification) -> PollStatus:
        """The notification's snapshot: from its compact twin when the feed has one (ADR 0011),
        which must be the very snapshot named (session, serial, set hash, expiry), else from
        the JSON file."""
        ref = notification.snapshot
        data = self._static_compact(ref) if self._compact else None
        if data is None:
            return self._accept_snapshot(self._static_file(ref))

        def named(doc: VerifiedSnapshot) -> None:
            signed = (doc.session_id, doc.serial, doc.set_hash, doc.expires)
            if signed != (notification.session_id, ref.serial, notification.set_hash, ref.expires):
                raise HashMismatch(
                    f"{compact_sidecar(ref.uri)} is not the snapshot the notification names"
                )

        return self._accept_snapshot(data, check=named)

    def _static_compact(self, ref: FileRef) -> bytes | None:
        """The gunzipped compact twin of the snapshot file `ref`, or None when the feed has
        none (404, no such file): it is not in the signed notification, it proves itself."""
        name = compact_sidecar(ref.uri)
        if name is None:
            return None
        where = self._static
        if isinstance(where, str):
            assert self._http is not None
            url = str(httpx.URL(where).join(name))
            response = self._get(self._http, url, missing_ok=True)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise _Unreachable(f"feed {url}: unexpected HTTP {response.status_code}", "http")
            data = response.body
        else:
            assert where is not None
            path = where.parent / name
            if not path.is_file():
                return None
            data = self._read_file(path)
        return self._gunzip(data, name)

    def _static_file(self, ref: FileRef) -> bytes:
        """The document in the file `ref` names (beside the notification): its bytes must
        have the notification's SHA-256 (HashMismatch), then are gunzipped within max_bytes."""
        where = self._static
        if isinstance(where, str):
            assert self._http is not None
            url = str(httpx.URL(where).join(ref.uri))
            response = self._get(self._http, url)
            if response.status_code != 200:
                raise _Unreachable(f"feed {url}: unexpected HTTP {response.status_code}", "http")
            data = response.body
        else:
            assert where is not None
            data = self._read_file(where.parent / ref.uri)
        if not ref.matches(data):
            raise HashMismatch(f"{ref.uri} does not have the SHA-256 the notification gives")
        return self._gunzip(data, ref.uri)

    def _gunzip(self, data: bytes, name: str) -> bytes:
        limit = self._max_bytes
        decompressor: Any = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunks: list[bytes] = []
        size = 0
        for piece in _inflate(data, decompressor):
            size += len(piece)
            if size > limit:
                raise DocumentTooLarge(f"{name} passed the limit of {limit} bytes once inflated")
            chunks.append(piece)
        if not decompressor.eof:
            raise TruncatedDocument(f"{name}: the gzip data ends early")
        if decompressor.unused_data:
            raise MalformedDocument(f"{name}: data after the end of the gzip data")
        return b"".join(chunks)

    # -- accepting documents -----------------------------------------------------------------

    def _accept_snapshot(
        self, raw: bytes, *, check: Callable[[VerifiedSnapshot], None] | None = None
    ) -> PollStatus:
        """Verify a snapshot, JSON or compact (ADR 0011: told apart by the compact magic), and
        hold it; `check` refuses a verified one that is not the snapshot expected."""
        now = self._clock.now()
        held = self._state.held() if self._state is not None else None
        if is_compact(raw):
            doc: VerifiedSnapshot | VerifiedDelta = verify_compact(
                raw, trusted=self._trusted, now=now, held=held
            )
        else:
            doc = verify_document(raw, trusted=self._trusted, now=now, held=held)
        if not isinstance(doc, VerifiedSnapshot):
            raise MalformedDocument("expected a snapshot document, got a delta")
        if check is not None:
            check(doc)
        state = doc.state()
        if held is not None and check_not_older(held, doc) is Freshness.SAME:
            assert self._state is not None
            if doc.expires > self._state.expires:
                # Same set, re-signed with a later expiry: keep the fresher proof.
                self._persist(lambda: self._store.save_snapshot(doc, raw=raw, verified_at=now))
                self._state = state
            return PollStatus.UNCHANGED
        self._persist(lambda: self._store.save_snapshot(doc, raw=raw, verified_at=now))
        self._state = state
        return PollStatus.UPDATED

    def _accept_deltas(self, raws: list[bytes]) -> PollStatus:
        """Verify every delta's signature and expiry, then apply them all in memory; persist
        and switch only when the last one checks out (all or nothing)."""
        if not raws:
            return PollStatus.UNCHANGED
        if self._state is None:
            raise MalformedDocument("deltas offered but no state is held")
        now = self._clock.now()
        docs: list[VerifiedDelta] = []
        for raw in raws:
            doc = verify_document(raw, trusted=self._trusted, now=now)
            if not isinstance(doc, VerifiedDelta):
                raise MalformedDocument("the delta list holds a snapshot")
            docs.append(doc)
        state = self._state
        for doc in docs:
            check_not_older(state.held(), doc)
            state = apply_delta(state, doc)
        final = state
        self._persist(lambda: self._store.save_rebuilt(raws[-1], final, verified_at=now))
        self._state = final
        return PollStatus.UPDATED

    def _persist(self, write: Callable[[], None]) -> None:
        try:
            write()
        except OSError as exc:
            raise _Unreachable(
                f"cannot write state directory {self._store.directory}: "
                f"{exc.strerror or exc} ({getattr(exc, 'filename', '')})",
                "io",
            ) from None

    # -- outcomes ----------------------------------------------------------------------------

    def _refused(
        self, exc: FeedError, *, prefix: str = "refused feed document", hint: str = ""
    ) -> PollResult:
        kind = type(exc).__name__
        message = f"{prefix}: {kind}: {exc}; {self._holding()}{hint}"
        self._log.warning("%s", message)
        if self._metrics is not None:
            self._metrics.refused.labels(kind=kind).inc()
        self._update_metrics()
        return PollResult(PollStatus.REFUSED, self._state, message, kind)

    def _unreachable(self, detail: str, kind: str) -> PollResult:
        message = f"feed unreachable: {detail}; {self._holding()}"
        self._log.warning("%s", message)
        if self._metrics is not None:
            self._metrics.unreachable.labels(kind=kind).inc()
        self._update_metrics()
        return PollResult(PollStatus.UNREACHABLE, self._state, message, kind)

    def _holding(self) -> str:
        if self._state is None:
            return "holding nothing"
        return f"keeping serial {self._state.serial} of session {self._state.session_id}"

    def _update_metrics(self) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        self.stale()
        if self._state is not None:
            metrics.serial.set(self._state.serial)
            age = (self._clock.now() - self._state.created).total_seconds()
            metrics.age_seconds.set(max(0.0, age))
        if self._verified_at is not None:
            metrics.last_success.set(self._verified_at.timestamp())

    def __enter__(self) -> FeedClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
