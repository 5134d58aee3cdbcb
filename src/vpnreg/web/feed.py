"""The signed allowlist feed over HTTP (/feed/v1/*, contract in docs/feed-client.md), and the
scheduler that keeps it current.

`FeedServer` holds one `services.FeedPublisher` (the database side), the signing key and a
`Timer`. Its lifespan task publishes at start, then wakes every `check_interval_s`, or at once
when `notify_changed()` asks (thread-safe, non-blocking; at most one publish per `notify_gap_s`,
so a burst of changes is one publish). A wake-up calls `FeedPublisher.catch_up`, which runs the
full publish only when something audited happened or, every `publish_interval_s`, when a
time-driven step (activation, expiry) is due; otherwise it costs a couple of small reads. Long
polls wait on events that each new serial replaces, so they never block the loop; a new serial
wakes them a group per turn of the loop (vpnreg.web.wakeup), so other requests are read between
the groups' answers.

Several server processes may serve one database (`vpnreg serve --workers N`, or separate
servers; ADR 0016): a wake-up calls `FeedPublisher.tick`, which publishes only in the process
holding the publisher lease and otherwise loads the serial the holder stored. On PostgreSQL a
listener thread (vpnreg.registry.feed_signals) turns the database's notifications into
`notify_changed()`: an audited change committed by any process wakes the publishing one, and a
serial it stored wakes every other, so their long polls answer at once. On SQLite the others
notice at their next check (`check_interval_s`, VPNREG_FEED_CHECK_INTERVAL_S).

Signed bodies are cached per state: the snapshot (JSON, and the compact form of ADR 0011 for
clients whose Accept asks for it), and the merged delta from each `since`. A body
is signed on first request and re-signed once `resign_after` (by default half) of its validity
has gone, so a gateway always receives a document with the rest of the validity ahead of it,
and a thousand gateways asking for the same serial cost one signature.

All waiting goes through the `Timer` (`monotonic()` and `wait(event, timeout)`): the real one is
`AsyncioTimer`; tests pass a timer they advance by hand.

Install with `install_feed(app, settings)` (includes the router, whose lifespan FastAPI merges
into the app's, and sets `app.state.feed`). Gateway tokens are checked through the registry's
token service in a short-lived session of the app's `Database` (or the server's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeAlias

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vpnreg.clock import Clock, SystemClock
from vpnreg.core.feed import COMPACT_MEDIA_TYPE, FeedHistory, dump_document, merge_deltas
from vpnreg.core.feed.compact import sign_history_compact
from vpnreg.core.feed.document import expires_after, sign_history_delta, sign_history_snapshot
from vpnreg.core.feed.versions import DEFAULT_MAX_DELTAS
from vpnreg.core.review import Role
from vpnreg.feedkeys import server_signing_key
from vpnreg.registry import credential_changes, services
from vpnreg.registry.credential_changes import CREDENTIALS_CHANNEL
from vpnreg.registry.errors import Unavailable
from vpnreg.registry.feed_signals import CHANGED_CHANNEL, FEED_CHANNEL, FeedListener, uses_notify
from vpnreg.registry.feed_static import static_options, write_static_feed
from vpnreg.registry.services.feed_publisher import CatchUp
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.settings import Settings
from vpnreg.web.policy import GATEWAY, allow, only
from vpnreg.web.wakeup import Wakeup

__all__ = [
    "AsyncioTimer",
    "FeedOptions",
    "FeedServer",
    "SignedDocument",
    "Timer",
    "feed_router",
    "install_feed",
]

_LOG = logging.getLogger(__name__)
#: Bodies smaller than this are sent as they are (gzip would not pay for its header).
_GZIP_MIN = 512
_JSON = "application/json"
_EMPTY_DELTAS = b'{"deltas":[]}'
#: Serials are 64-bit (they are compared in memory, never sent to the database).
MAX_SERIAL = 2**63 - 1
#: The longest `session` a request may name (the route's bound, and its fast path's).
MAX_SESSION_ID = 64
#: How the OpenAPI document describes a feed answer (docs/feed-client.md has the contract).
_SIGNED_JSON: dict[str, Any] = {
    "description": "A JSON document (signed, where it carries entries; see docs/feed-client.md)",
    "content": {_JSON: {"schema": {"type": "object"}}},
}
_SNAPSHOT: dict[str, Any] = {
    "description": "The signed snapshot: ADR 0001's JSON document, or with `Accept: "
    f"{COMPACT_MEDIA_TYPE}` the compact snapshot of ADR 0011 (the same signed state as "
    "fixed-width records; docs/feed-client.md)",
    "content": {
        _JSON: {"schema": {"type": "object"}},
        COMPACT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
    },
}
#: The cache key of a state's compact snapshot (the JSON snapshot's is None, a delta's `since`).
_COMPACT = "compact"


class Timer(Protocol):
    """How the scheduler and the long polls tell time and wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait until `event` is set (True) or `timeout` seconds have passed (False). A
        cancellation of the caller must always propagate."""
        ...


class AsyncioTimer:
    """The real timer: time.monotonic and the running loop."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives
        # as the event is set (a POST's notify just before shutdown), and the shutdown then
        # waited for the scheduler forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await event.wait()
        return event.is_set()


@dataclass(frozen=True)
class FeedOptions:
    """Timings of the feed server, in seconds unless named otherwise."""

    #: How long a served document stays valid (expires = signing time + validity).
    validity: dt.timedelta = dt.timedelta(days=1)
    #: Longest long poll; a client asking for more waits this long.
    max_wait_s: float = 60.0
    #: Look at least this often whether time alone made a step due (expiry, activation), and
    #: publish if so.
    publish_interval_s: float = 30.0
    #: How often to look for changes made elsewhere (CLI, cron, other workers; on PostgreSQL
    #: their notifications come at once, this is the fallback) and, in a process that does not
    #: publish, whether the publisher lease is free: a couple of small reads.
    check_interval_s: float = 1.0
    #: Publishes asked for by `notify_changed` start at least this long after the previous one:
    #: a burst of changes (a reviewer's bulk approval, many submissions) is one publish, not one
    #: per request competing with the requests being served; approval to feed stays well under
    #: a second.
    notify_gap_s: float = 0.2
    #: A signed body is re-signed once this fraction of its validity has gone (signing a 1M
    #: snapshot takes about a second, so it is not done per request).
    resign_after: float = 0.5
    max_deltas: int = DEFAULT_MAX_DELTAS
    #: On PostgreSQL, LISTEN for the changes and serials of other processes (ADR 0016); off,
    #: they are noticed at the next check.
    listen: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedOptions:
        return cls(
            validity=dt.timedelta(seconds=settings.feed_validity_s),
            max_wait_s=settings.feed_max_wait_s,
            publish_interval_s=settings.feed_publish_interval_s,
            check_interval_s=settings.feed_check_interval_s,
            max_deltas=settings.feed_max_deltas,
            listen=settings.feed_listen,
            notify_gap_s=settings.feed_notify_gap_s,
        )


@dataclass(frozen=True)
class SignedDocument:
    """A signed body as served: the bytes, their gzip form when worth it, and when signed."""

    body: bytes
    gzipped: bytes | None
    signed_at: dt.datetime


#: (session id, serial) of a published state.
_State: TypeAlias = tuple[str, int]
#: Which body of a state: None for the snapshot, "compact" for its compact form, else the
#: `since` of a delta.
_Which: TypeAlias = int | str | None


class _SignedDocuments:
    """The signed bodies of one state, each signed once and re-signed when it gets old.

    Only the newest state's bodies are kept (a new state clears the rest). Requests for a body
    being signed wait for that signature instead of starting their own.
    """

    def __init__(self, clock: Clock, fresh_for: dt.timedelta) -> None:
        self._clock = clock
        self._fresh_for = fresh_for
        self._state: _State | None = None
        self._docs: dict[_Which, SignedDocument] = {}
        self._pending: dict[tuple[_State, _Which], asyncio.Future[SignedDocument]] = {}

    async def get(
        self, state: _State, which: _Which, sign: Callable[[dt.datetime], bytes]
    ) -> SignedDocument:
        """The cached body, or the one `sign(now)` makes (in a worker thread)."""
        found = self._docs.get(which) if state == self._state else None
        if found is not None and self._clock.now() - found.signed_at < self._fresh_for:
            return found
        key = (state, which)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._sign(state, which, sign))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        # Shielded: a gateway hanging up must not cancel a signature others are waiting for.
        return await asyncio.shield(pending)

    async def _sign(
        self, state: _State, which: _Which, sign: Callable[[dt.datetime], bytes]
    ) -> SignedDocument:
        now = self._clock.now()

        def work() -> SignedDocument:
            body = sign(now)
            zipped = gzip.compress(body, compresslevel=6) if len(body) >= _GZIP_MIN else None
            return SignedDocument(body, zipped, now)

        signed = await run_in_threadpool(work)
        if state != self._state:
            self._state, self._docs = state, {}
        self._docs[which] = signed
        return signed


def _etag(history: FeedHistory) -> str:
    return f'"{history.session_id}-{history.serial}"'


def _wants_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def _quality(accept: str, media_types: tuple[str, ...]) -> float:
    """The highest q the Accept header gives any of `media_types` (0 when none matches)."""
    best = 0.0
    for item in accept.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        if kind.lower() not in media_types:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = max(best, min(max(q, 0.0), 1.0))
    return best


def wants_compact(request: Request) -> bool:
    """Whether the client asks for the compact snapshot at least as much as for JSON (ADR
    0011); a client that names neither, or only JSON, gets JSON."""
    accept = request.headers.get("accept", "")
    compact = _quality(accept, (COMPACT_MEDIA_TYPE,))
    return compact > 0 and compact >= _quality(accept, (_JSON, "application/*", "*/*"))


def _respond(
    request: Request,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    gzipped: bytes | None = None,
    media_type: str = _JSON,
) -> Response:
    out = {"Vary": "Accept-Encoding", "Cache-Control": "no-cache", **(headers or {})}
    if len(body) >= _GZIP_MIN and _wants_gzip(request):
        out["Content-Encoding"] = "gzip"
        data = gzipped if gzipped is not None else gzip.compress(body, compresslevel=6)
        return Response(data, media_type=media_type, headers=out)
    return Response(body, media_type=media_type, headers=out)


def _etag_matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match")
    if not given:
        return False
    tags = {t.strip().removeprefix("W/") for t in given.split(",")}
    return etag in tags or "*" in tags


class FeedServer:
    """Publishes the feed of one registry and serves it to gateways (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        options: FeedOptions | None = None,
        publisher: services.FeedPublisher | None = None,
        key: Ed25519PrivateKey | None = None,
        timer: Timer | None = None,
        database: Database | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock if clock is not None else SystemClock()
        self._options = options if options is not None else FeedOptions.from_settings(settings)
        self._publisher = publisher
        self._key = key
        self._timer: Timer = timer if timer is not None else AsyncioTimer()
        self._database = database
        self._own_database: Database | None = None
        self._setup_lock = threading.Lock()
        self._documents = _SignedDocuments(
            self._clock, self._options.validity * self._options.resign_after
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._changed = Wakeup()
        self._task: asyncio.Task[None] | None = None
        self._on_new_serial: list[Callable[[], None]] = []
        #: The serial held when the long polls and `on_new_serial` were last told (_signal).
        self._signalled: tuple[str, int] | None = None
        self._listener: FeedListener | None = None

    # -- wiring ------------------------------------------------------------------------------

    @property
    def options(self) -> FeedOptions:
        return self._options

    @property
    def timer(self) -> Timer:
        return self._timer

    @property
    def publisher(self) -> services.FeedPublisher:
        with self._setup_lock:
            if self._publisher is None:
                self._publisher = services.FeedPublisher.for_url(
                    self._settings.database_url,
                    config=services.ServiceConfig.from_settings(self._settings),
                    clock=self._clock,
                    max_deltas=self._options.max_deltas,
                )
            return self._publisher

    def database(self) -> Database:
        """Where tokens are checked: the app's Database, or one of the server's own."""
        with self._setup_lock:
            if self._database is not None:
                return self._database
            if self._own_database is None:
                self._own_database = Database(self._settings.database_url)
            return self._own_database

    def signing_key(self) -> Ed25519PrivateKey:
        """The feed key named by the settings; generated in development when missing."""
        with self._setup_lock:
            if self._key is None:
                self._key = server_signing_key(
                    self._settings.feed_key, production=self._settings.is_production
                )
            return self._key

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """Load the key, publish once, run the scheduler; stop it and close the engine after."""
        await run_in_threadpool(self.signing_key)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._changed = Wakeup()
        url = self.publisher.database_url
        if self._options.listen and uses_notify(url):
            # Listening before the first publish: nothing committed after it goes unheard.
            self._listener = FeedListener(url, self._on_database_notify)
            if not await run_in_threadpool(self._listener.start):
                _LOG.warning("feed: not listening to the database yet; checking every %.1f s",
                             self._options.check_interval_s)  # fmt: skip
        try:
            # the first publish (or, in a process that does not hold the lease, the first load)
            await self._tick(check_time=False, first=True)
        except Exception:
            # The portal still starts (e.g. before `vpnreg db upgrade`); the scheduler retries.
            _LOG.exception("first feed publish failed")
        self._task = asyncio.create_task(self._schedule(), name="vpnreg-feed-scheduler")
        try:
            yield
        finally:
            listener, self._listener = self._listener, None
            if listener is not None:
                await run_in_threadpool(listener.stop)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task, self._loop, self._wake = None, None, None
            self.close()

    def close(self) -> None:
        """Release the publisher's database connections and the server's own token database
        (the lifespan does this on shutdown); an app's Database is the app's to dispose."""
        with self._setup_lock:
            publisher, self._publisher = self._publisher, None
            own, self._own_database = self._own_database, None
        if publisher is not None:
            publisher.close()
        if own is not None:
            own.dispose()

    # -- publishing --------------------------------------------------------------------------

    def notify_changed(self) -> None:
        """Ask for a publish now. Thread-safe and non-blocking; a no-op outside the lifespan."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(wake.set)

    def _on_database_notify(self, channel: str, payload: str) -> None:
        """A notification from the database (in the listener's thread): a change committed
        somewhere wakes the publishing process; a serial stored by another process wakes the
        others; a credentials change empties the token cache (vpnreg.web.token_cache); "" (the
        listener reconnected, notifications may be lost) does both everywhere."""
        if channel in (CREDENTIALS_CHANNEL, ""):
            # a token revoked or a user changed elsewhere: forget the tokens checked here
            credential_changes.changed()
            if channel:
                return
        publisher = self.publisher
        if channel == CHANGED_CHANNEL and not publisher.leads:
            return  # the others learn of it from the serial the publisher stores
        held = publisher.held_key()
        if channel == FEED_CHANNEL and held is not None and payload == f"{held[0]}:{held[1]}":
            return  # the serial held already (this process's own announcement)
        self.notify_changed()

    def settling(self) -> bool:
        """True while this process holds a serial it has not yet announced: the publish or
        follow that loaded it has returned from its thread, and `_signal` (the long polls'
        wake-up, the `on_new_serial` callbacks) is about to run on the loop."""
        return self.publisher.held_key() != self._signalled

    def on_new_serial(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop, without blocking it) each time this process
        comes to hold a new serial, published here or loaded from another process."""
        self._on_new_serial.append(callback)

    def _signal(self) -> None:
        # Every waiting long poll holds one of the old events; fresh ones are for the next
        # change (vpnreg.web.wakeup: the waiters are woken a group per turn of the loop).
        self._signalled = self.publisher.held_key()
        self._changed.signal()
        for callback in self._on_new_serial:
            try:
                callback()
            except Exception:
                _LOG.exception("feed: a new-serial callback failed")

    def _publish_blocking(self) -> bool:
        _, moved = self.publisher.publish()
        return moved

    def _write_static(self) -> None:
        """Bring the static feed directory (VPNREG_FEED_STATIC_DIR, ADR 0009) to the held
        state: new files for a new serial, re-signed ones as they age, old ones swept after
        the grace period. A failure is logged; the HTTP feed goes on."""
        directory = self._settings.feed_static_dir
        history = self.publisher.history()
        if directory is None or history is None:
            return
        options = static_options(
            validity_s=self._options.validity.total_seconds(),
            grace_s=self._settings.feed_static_grace_s,
        )
        try:
            write_static_feed(
                directory, history, key=self.signing_key(), now=self._clock.now(), options=options
            )
        except OSError as err:
            _LOG.warning("static feed: cannot write %s: %s", directory, err.strerror or err)

    async def _publish(self) -> bool:
        moved = await run_in_threadpool(self._publish_blocking)
        if moved:
            self._signal()
        # after the long polls are woken: gzipping a large snapshot must not delay them
        if self._settings.feed_static_dir is not None:
            await run_in_threadpool(self._write_static)
        return moved

    async def publish_now(self) -> None:
        """Publish at once and wake the long polls if the serial moved (for async callers)."""
        await self._publish()

    def _catch_up_blocking(self, check_time: bool) -> CatchUp:
        """A scheduler wake-up's database work (the one seam tests/feed_server/
        test_scheduler.py records, so the start's tick goes through `_start_blocking`)."""
        return self.publisher.tick(check_time=check_time)

    def _start_blocking(self, check_time: bool) -> CatchUp:
        return self.publisher.tick(check_time=check_time)

    async def _tick(self, *, check_time: bool, first: bool = False) -> CatchUp:
        """One wake-up's work (or, `first`, the start's): publish or follow, then wake the long
        polls and write the static feed as needed."""
        work = self._start_blocking if first else self._catch_up_blocking
        outcome = await run_in_threadpool(work, check_time)
        if outcome.moved:
            self._signal()
        writes = self._settings.feed_static_dir is not None and self.publisher.leads
        if writes and (outcome.moved or check_time):
            # Only the publishing process writes the directory (one writer sweeps old files);
            # check_time: files near the end of their validity are re-signed.
            await run_in_threadpool(self._write_static)
        return outcome

    async def _schedule(self) -> None:
        options, timer = self._options, self._timer
        wake = self._wake
        assert wake is not None
        # Never set: waiting on it is a pause measured by the timer.
        pause = asyncio.Event()
        last_publish = last_time_check = timer.monotonic()
        while True:
            woken = await timer.wait(wake, options.check_interval_s)
            wake.clear()
            try:
                if woken and (gap := last_publish + options.notify_gap_s - timer.monotonic()) > 0:
                    await timer.wait(pause, gap)  # changes asked for meanwhile join this publish
                    wake.clear()
                started = timer.monotonic()
                check_time = started - last_time_check >= options.publish_interval_s
                if check_time:
                    last_time_check = started
                outcome = await self._tick(check_time=check_time)
                if outcome.published:
                    last_publish = started
            except asyncio.CancelledError:
                raise
            except Unavailable as err:
                # The database is restarting or unreachable: say so in one line, no traceback.
                _LOG.warning("feed publish: %s; retrying in %.1f s", err, options.check_interval_s)
            except Exception:
                # A database hiccup must not stop the scheduler; the next tick tries again.
                _LOG.exception("feed publish failed; retrying in %.1f s", options.check_interval_s)

    async def current(self) -> FeedHistory:
        """The held history, publishing first when nothing is held yet (no lifespan ran)."""
        held = self.publisher.history()
        if held is None:
            await self._tick(check_time=False, first=True)
            held = self.publisher.history()
        if held is None:
            # another process holds the lease and has not stored a first serial yet
            raise HTTPException(503, "the feed is not ready", headers={"Retry-After": "1"})
        return held

    # -- documents ---------------------------------------------------------------------------

    def _expires(self, created: dt.datetime, now: dt.datetime) -> dt.datetime:
        return expires_after(created, now=now, validity=self._options.validity)

    async def snapshot_document(
        self, history: FeedHistory, *, compact: bool = False
    ) -> SignedDocument:
        """The signed snapshot of `history`, as JSON or in the compact form (ADR 0011; each
        cached, see the module docstring)."""
        snap = history.snapshot()
        encode = sign_history_compact if compact else sign_history_snapshot

        def sign(now: dt.datetime) -> bytes:
            return encode(
                snap, expires=self._expires(snap.created, now), private_key=self.signing_key()
            )

        which = _COMPACT if compact else None
        return await self._documents.get((snap.session_id, snap.serial), which, sign)

    def _delta_body(self, history: FeedHistory, since: int, now: dt.datetime) -> bytes:
        steps = history.delta_since(since)
        if not steps:
            return _EMPTY_DELTAS
        # One merged delta: one signature, and entries added then removed never travel.
        step = merge_deltas(steps)
        document = sign_history_delta(
            history.session_id,
            step,
            expires=self._expires(step.created, now),
            private_key=self.signing_key(),
        )
        return b'{"deltas":[' + dump_document(document) + b"]}"

    async def delta_document(self, history: FeedHistory, since: int) -> SignedDocument:
        """The deltas envelope from `since` to `history` (the signed delta cached per `since`);
        `since` must be one `history.delta_since` knows."""
        if not history.delta_since(since):
            return SignedDocument(_EMPTY_DELTAS, None, self._clock.now())
        return await self._documents.get(
            (history.session_id, history.serial),
            since,
            lambda now: self._delta_body(history, since, now),
        )

    async def wait_for_change(
        self, history: FeedHistory, since: int, session: str | None, wait_s: float
    ) -> FeedHistory | None:
        """The newer history once its serial passes `since` (or its session is not `session`),
        or None after `wait_s` seconds without that."""
        timer = self._timer
        deadline = timer.monotonic() + min(max(wait_s, 0.0), self._options.max_wait_s)
        while True:
            changed = self._changed.event()
            current = self.publisher.history() or history
            if current.session_id != session or current.serial > since:
                return current
            left = deadline - timer.monotonic()
            if left <= 0:
                return None
            await timer.wait(changed, left)

    async def delta_response(
        self, request: Request, *, since: int, session: str | None, wait: float
    ) -> Response:
        """The answer to `/delta?since=&session=&wait=` (docs/feed-client.md): the signed delta
        from `since` of `session` to now, or a reset answer; with `wait`, a long poll. The one
        implementation, for the route and for its fast path (vpnreg.web.feed_fastpath)."""
        history = await self.current()
        if wait > 0 and session == history.session_id and since >= history.serial:
            # `since` ahead of the serial held here: another server process answered this
            # gateway first and this one has not loaded that serial yet (ADR 0016); it waits
            # for it like for any change. Still ahead when the wait is over: a feed that went
            # back (a restored database), answered with a reset below.
            moved = await self.wait_for_change(history, since, session, wait)
            if moved is not None:
                history = moved
            else:
                history = await self.current()
                if history.session_id == session and history.serial == since:
                    return Response(status_code=204)
        if session != history.session_id or history.delta_since(since) is None:
            body = dump_document(
                {"reset": True, "session_id": history.session_id, "serial": history.serial}
            )
            return _respond(request, body)
        signed = await self.delta_document(history, since)
        return _respond(
            request, signed.body, headers={"ETag": _etag(history)}, gzipped=signed.gzipped
        )

    # -- authentication ----------------------------------------------------------------------

    def _token_role(self, token: str) -> str | None:
        """The role `token` acts with now (a user-bound token: its user's current role), or
        None for a token that is unknown, revoked, expired or whose user is disabled."""
        with self.database().session() as session:
            found = services.authenticate_token(session, token=token, now=self._clock.now())
            return None if found is None else services.effective_role(found)

    async def gateway(self, request: Request) -> None:
        """Refuse a request without a live gateway token: 401 without one, 403 for another
        role."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="vpnreg-feed"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "a gateway token is required", headers=challenge)
        resolved: Any = getattr(request.state, "principal", None)
        if resolved is not None and resolved.via == "token":
            # The app's policy (web.auth) checked this very token for this request already:
            # a second lookup would double the database work of every gateway request.
            role = resolved.role
        else:
            role = await run_in_threadpool(self._token_role, token.strip())
        if role is None:
            raise HTTPException(401, "unknown or revoked token", headers=challenge)
        if role != Role.GATEWAY.value:
            raise HTTPException(403, f"a {role} token may not read the feed")


def feed_router(server: FeedServer) -> APIRouter:
    """The /feed/v1 routes of `server`; its lifespan runs the scheduler."""
    # Every route needs a gateway token: one router-wide dependency, checked before the query.
    router = APIRouter(
        prefix="/feed/v1",
        tags=["feed"],
        lifespan=server.lifespan,
        dependencies=[allow(only(GATEWAY)), Depends(server.gateway)],
    )

    @router.get(
        "/snapshot",
        response_class=Response,
        responses={
            200: _SNAPSHOT,
            304: {"description": "If-None-Match names the current state: nothing new"},
        },
    )
    async def snapshot(request: Request) -> Response:
        """The signed snapshot of the current set (ETag "session-serial", "session-serial-compact"
        for the compact form; 304 when If-None-Match names the current state in either form).
        JSON, or the compact snapshot when Accept prefers it (ADR 0011)."""
        history = await server.current()
        etag = _etag(history)
        compact = wants_compact(request)
        tag = f'{etag[:-1]}-compact"' if compact else etag
        headers = {"ETag": tag, "Vary": "Accept-Encoding, Accept"}
        if _etag_matches(request, etag) or _etag_matches(request, f'{etag[:-1]}-compact"'):
            return Response(status_code=304, headers=headers)
        signed = await server.snapshot_document(history, compact=compact)
        return _respond(
            request,
            signed.body,
            headers=headers,
            gzipped=signed.gzipped,
            media_type=COMPACT_MEDIA_TYPE if compact else _JSON,
        )

    @router.get(
        "/delta",
        response_class=Response,
        responses={
            200: _SIGNED_JSON,
            204: {"description": "`wait` given: no change within `wait` seconds"},
        },
    )
    async def delta(
        request: Request,
        since: Annotated[int, Query(ge=0, le=MAX_SERIAL)],
        session: Annotated[str | None, Query(max_length=MAX_SESSION_ID)] = None,
        wait: Annotated[float, Query(ge=0)] = 0.0,
    ) -> Response:
        """The signed delta from `since` of `session` to now, or a reset answer. With `wait`,
        a long poll: when `since` is current, the answer waits for the next serial (204 after
        `wait` s), so a gateway follows the feed with one request per change, not two."""
        return await server.delta_response(request, since=since, session=session, wait=wait)

    @router.get(
        "/notify",
        response_class=Response,
        responses={200: _SIGNED_JSON, 204: {"description": "no change within `wait` seconds"}},
    )
    async def notify(
        request: Request,
        since: Annotated[int, Query(ge=0, le=MAX_SERIAL)],
        session: Annotated[str | None, Query(max_length=MAX_SESSION_ID)] = None,
        wait: Annotated[float, Query(ge=0)] = 0.0,
    ) -> Response:
        """Long poll: answers as soon as the serial passes `since` (204 after `wait` s)."""
        history = await server.current()
        moved = await server.wait_for_change(history, since, session, wait)
        if moved is None:
            return Response(status_code=204)
        body = dump_document({"session_id": moved.session_id, "serial": moved.serial})
        return _respond(request, body)

    return router


def install_feed(
    app: FastAPI,
    settings: Settings,
    *,
    clock: Clock | None = None,
    options: FeedOptions | None = None,
    timer: Timer | None = None,
) -> FeedServer:
    """Serve the feed from `app`: routes under /feed/v1, the scheduler in the app's lifespan,
    and the server at `app.state.feed` (call `app.state.feed.notify_changed()` after changes).
    Tokens are checked in sessions of `app.state.database` when the app has one."""
    database = getattr(app.state, "database", None)
    server = FeedServer(
        settings,
        clock=clock,
        options=options,
        timer=timer,
        database=database if isinstance(database, Database) else None,
    )
    app.include_router(feed_router(server))
    app.state.feed = server
    return server
