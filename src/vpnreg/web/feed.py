"""The signed allowlist feed over HTTP (/feed/v1/*, contract in docs/feed-client.md), and the
scheduler that publishes it.

`FeedServer` holds one `services.FeedPublisher` (the database side) and the signing key. Its
lifespan task publishes at start, then keeps the feed current: every `check_interval_s` it looks
whether anything audited happened (one small read) or whether another process moved the feed,
and every `publish_interval_s` it publishes regardless, so expiry and activation happen on time
with nobody touching the registry. `notify_changed()` (thread-safe, non-blocking) asks for a
publish at once (at most one per `notify_gap_s`): the API calls it after every state-changing
request, so an approval reaches long-polling gateways within a fraction of a second. Long polls
wait on an asyncio.Event that each new serial replaces, so they never block the event loop.

Install with `install_feed(app, settings)` (includes the router, whose lifespan FastAPI merges
into the app's, and sets `app.state.feed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vpnreg.clock import Clock, SystemClock
from vpnreg.core.feed import (
    FeedHistory,
    dump_document,
    merge_deltas,
    sign_delta,
    sign_snapshot_bytes,
)
from vpnreg.core.feed.versions import DEFAULT_MAX_DELTAS
from vpnreg.core.review import Role
from vpnreg.feedkeys import ensure_dev_key, load_private_key
from vpnreg.registry import services
from vpnreg.settings import Settings

__all__ = ["FeedOptions", "FeedServer", "feed_router", "install_feed"]

_LOG = logging.getLogger(__name__)
#: Bodies smaller than this are sent as they are (gzip would not pay for its header).
_GZIP_MIN = 512
_JSON = "application/json"


@dataclass(frozen=True)
class FeedOptions:
    """Timings of the feed server, in seconds unless named otherwise."""

    #: How long a served document stays valid (expires = signing time + validity).
    validity: dt.timedelta = dt.timedelta(days=1)
    #: Longest long poll; a client asking for more waits this long.
    max_wait_s: float = 60.0
    #: Publish at least this often, for time-driven changes (expiry, activation).
    publish_interval_s: float = 30.0
    #: How often to look for changes made elsewhere (CLI, cron, other workers).
    check_interval_s: float = 1.0
    #: Publishes asked for by `notify_changed` start at least this long after the previous one:
    #: a burst of changes (a reviewer's bulk approval, many submissions) is one publish, not one
    #: per request competing with the requests being served; approval to feed stays well under
    #: a second.
    notify_gap_s: float = 0.2
    #: A signed snapshot is reused for at most this long (signing 1M entries takes a second).
    snapshot_cache_s: float = 300.0
    max_deltas: int = DEFAULT_MAX_DELTAS

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedOptions:
        return cls(
            validity=dt.timedelta(seconds=settings.feed_validity_s),
            max_wait_s=settings.feed_max_wait_s,
            publish_interval_s=settings.feed_publish_interval_s,
            max_deltas=settings.feed_max_deltas,
        )


@dataclass(frozen=True)
class _SignedSnapshot:
    session_id: str
    serial: int
    signed_at: float
    body: bytes
    gzipped: bytes


def _etag(history: FeedHistory) -> str:
    return f'"{history.session_id}-{history.serial}"'


def _wants_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def _respond(
    request: Request,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    gzipped: bytes | None = None,
) -> Response:
    out = {"Vary": "Accept-Encoding", "Cache-Control": "no-cache", **(headers or {})}
    if len(body) >= _GZIP_MIN and _wants_gzip(request):
        out["Content-Encoding"] = "gzip"
        data = gzipped if gzipped is not None else gzip.compress(body, compresslevel=6)
        return Response(data, media_type=_JSON, headers=out)
    return Response(body, media_type=_JSON, headers=out)


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
    ) -> None:
        self._settings = settings
        self._clock = clock if clock is not None else SystemClock()
        self._options = options if options is not None else FeedOptions.from_settings(settings)
        self._publisher = publisher
        self._key = key
        self._setup_lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._snapshot: _SignedSnapshot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- wiring ------------------------------------------------------------------------------

    @property
    def options(self) -> FeedOptions:
        return self._options

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

    def signing_key(self) -> Ed25519PrivateKey:
        """The feed key named by the settings; generated in development when missing."""
        with self._setup_lock:
            if self._key is None:
                path = self._settings.feed_key
                self._key = (
                    load_private_key(path) if self._settings.is_production else ensure_dev_key(path)
                )
            return self._key

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """Load the key, publish once, run the scheduler; stop it and close the engine after."""
        await run_in_threadpool(self.signing_key)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        try:
            await self._publish()
        except Exception:
            # The portal still starts (e.g. before `vpnreg db upgrade`); the scheduler retries.
            _LOG.exception("first feed publish failed")
        self._task = asyncio.create_task(self._schedule(), name="vpnreg-feed-scheduler")
        try:
            yield
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task, self._loop, self._wake = None, None, None
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

    def close(self) -> None:
        """Release the publisher's database connections (the lifespan does this on shutdown)."""
        with self._setup_lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

    # -- publishing --------------------------------------------------------------------------

    def notify_changed(self) -> None:
        """Ask for a publish now. Thread-safe and non-blocking; a no-op outside the lifespan."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(wake.set)

    def _signal(self) -> None:
        # Every waiting long poll holds the old event; a fresh one is for the next change.
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    def _publish_blocking(self) -> bool:
        with self._publish_lock:
            _, moved = self.publisher.publish()
            return moved

    async def _publish(self) -> bool:
        moved = await run_in_threadpool(self._publish_blocking)
        if moved:
            self._signal()
        return moved

    async def publish_now(self) -> None:
        """Publish at once and wake the long polls if the serial moved (for async callers)."""
        await self._publish()

    def _check_blocking(self) -> tuple[bool, bool]:
        """(anything audited since the last publish, the stored feed moved elsewhere)."""
        publisher = self.publisher
        return publisher.registry_changed(), publisher.refresh()

    async def _schedule(self) -> None:
        options = self._options
        last_publish = time.monotonic()
        wake = self._wake
        assert wake is not None
        while True:
            woken = False
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the event is set (a POST's notify just before shutdown), and the
            # shutdown then waited for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(options.check_interval_s):
                    await wake.wait()
                woken = True
            wake.clear()
            try:
                if woken and (gap := last_publish + options.notify_gap_s - time.monotonic()) > 0:
                    await asyncio.sleep(gap)  # changes asked for meanwhile join this publish
                    wake.clear()
                due = woken or time.monotonic() - last_publish >= options.publish_interval_s
                if not due:
                    changed, moved = await run_in_threadpool(self._check_blocking)
                    if moved:
                        self._signal()
                    due = changed
                if due:
                    last_publish = time.monotonic()
                    await self._publish()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not stop the scheduler; the next tick tries again.
                _LOG.exception("feed publish failed; retrying in %.1f s", options.check_interval_s)

    async def current(self) -> FeedHistory:
        """The held history, publishing first when nothing is held yet (no lifespan ran)."""
        held = self.publisher.history()
        if held is None:
            await self._publish()
            held = self.publisher.history()
        if held is None:  # pragma: no cover - publish always leaves a history
            raise HTTPException(503, "the feed is not ready")
        return held

    # -- documents ---------------------------------------------------------------------------

    def _sign_snapshot(self, history: FeedHistory) -> _SignedSnapshot:
        snap = history.snapshot()
        body = sign_snapshot_bytes(
            session_id=snap.session_id,
            serial=snap.serial,
            entries=snap.entries,
            mode=snap.mode,
            created=snap.created,
            expires=self._expires(snap.created),
            private_key=self.signing_key(),
        )
        return _SignedSnapshot(
            snap.session_id, snap.serial, time.monotonic(), body, gzip.compress(body, 6)
        )

    def _expires(self, created: dt.datetime) -> dt.datetime:
        # Never before the state's own time, whatever the clock says (sign refuses that).
        return max(self._clock.now(), created) + self._options.validity

    async def snapshot_document(self, history: FeedHistory) -> _SignedSnapshot:
        cached = self._snapshot
        if (
            cached is not None
            and (cached.session_id, cached.serial) == (history.session_id, history.serial)
            and time.monotonic() - cached.signed_at < self._options.snapshot_cache_s
        ):
            return cached
        signed = await run_in_threadpool(self._sign_snapshot, history)
        self._snapshot = signed
        return signed

    def delta_body(self, history: FeedHistory, since: int) -> bytes:
        steps = history.delta_since(since)
        if not steps:
            return b'{"deltas":[]}'
        # One merged delta: one signature, and entries added then removed never travel.
        step = merge_deltas(steps)
        document = sign_delta(
            session_id=history.session_id,
            serial=step.serial,
            previous_serial=step.previous_serial,
            added=step.added,
            removed=step.removed,
            set_hash=step.set_hash,
            mode=step.mode,
            created=step.created,
            expires=self._expires(step.created),
            private_key=self.signing_key(),
        )
        return b'{"deltas":[' + dump_document(document) + b"]}"

    async def wait_for_change(
        self, history: FeedHistory, since: int, session: str | None, wait_s: float
    ) -> FeedHistory | None:
        """The newer history once its serial passes `since` (or its session is not `session`),
        or None after `wait_s` seconds without that."""
        deadline = time.monotonic() + min(max(wait_s, 0.0), self._options.max_wait_s)
        while True:
            changed = self._changed
            current = self.publisher.history() or history
            if current.session_id != session or current.serial > since:
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):  # not wait_for: see _schedule
                    await changed.wait()

    # -- authentication ----------------------------------------------------------------------

    async def gateway(self, request: Request) -> services.ApiToken:
        """The gateway token of the request: 401 without a live token, 403 for another role."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="vpnreg-feed"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "a gateway token is required", headers=challenge)
        found = await run_in_threadpool(self.publisher.authenticate, token.strip())
        if found is None:
            raise HTTPException(401, "unknown or revoked token", headers=challenge)
        role = services.effective_role(found)  # a user's token has the user's current role
        if role != Role.GATEWAY.value:
            raise HTTPException(403, f"a {role} token may not read the feed")
        return found


def feed_router(server: FeedServer) -> APIRouter:
    """The /feed/v1 routes of `server`; its lifespan runs the scheduler."""
    # Every route needs a gateway token: one router-wide dependency, checked before the query.
    router = APIRouter(
        prefix="/feed/v1",
        tags=["feed"],
        lifespan=server.lifespan,
        dependencies=[Depends(server.gateway)],
    )

    @router.get("/snapshot", response_class=Response)
    async def snapshot(request: Request) -> Response:
        """The signed snapshot of the current set (ETag "session-serial"; 304 on a match)."""
        history = await server.current()
        etag = _etag(history)
        if _etag_matches(request, etag):
            return Response(status_code=304, headers={"ETag": etag})
        signed = await server.snapshot_document(history)
        return _respond(request, signed.body, headers={"ETag": etag}, gzipped=signed.gzipped)

    @router.get("/delta", response_class=Response)
    async def delta(
        request: Request,
        since: Annotated[int, Query(ge=0)],
        session: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        """The signed delta from `since` of `session` to now, or a reset answer."""
        history = await server.current()
        if session != history.session_id or history.delta_since(since) is None:
            body = dump_document(
                {"reset": True, "session_id": history.session_id, "serial": history.serial}
            )
            return _respond(request, body)
        body = await run_in_threadpool(server.delta_body, history, since)
        return _respond(request, body, headers={"ETag": _etag(history)})

    @router.get("/notify", response_class=Response, responses={204: {"description": "no change"}})
    async def notify(
        request: Request,
        since: Annotated[int, Query(ge=0)],
        session: Annotated[str | None, Query(max_length=64)] = None,
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
) -> FeedServer:
    """Serve the feed from `app`: routes under /feed/v1, the scheduler in the app's lifespan,
    and the server at `app.state.feed` (call `app.state.feed.notify_changed()` after changes)."""
    server = FeedServer(settings, clock=clock, options=options)
    app.include_router(feed_router(server))
    app.state.feed = server
    return server
