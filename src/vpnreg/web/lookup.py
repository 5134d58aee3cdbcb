"""How the web app answers "is this address registered": the feed's in-memory index for a
question about now (services.lookup_index, ADR 0014), SQL (services.lookup) otherwise.

The routes that use it (`/api/v1/ip/{address}`, `/api/v1/lookup`, the portal's `/lookup`) are
`async`: an answer from the index costs no thread hop and no database session; only a build of
the index and the SQL answer run in the threadpool. The build starts as soon as the process
holds a new serial, if lookups were answered since the last build (`rebuild_on_new_serial`);
lookups arriving while it runs answer from the index of the serial before (one publish older,
for the build's tens of milliseconds) instead of queueing behind it. Only the first lookup a
process answers, or one after a quiet spell, waits for a build.

The SQL answer reads the session the route passes (the read replica's for the public, ADR
0017); the index is built from the primary, in a unit of work of its own, as the feed it
indexes is: its details then always belong to the same moment as its entries, whatever the
replica's lag.
"""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from vpnreg.clock import Clock
from vpnreg.core.feed import FeedHistory
from vpnreg.registry import services
from vpnreg.registry.services import ServiceConfig
from vpnreg.registry.services.feed_publisher import FeedPublisher
from vpnreg.registry.services.lookup import LookupResult, lookup_query
from vpnreg.registry.services.lookup_index import LookupIndex, LookupIndexHolder
from vpnreg.registry.services.unit_of_work import Database, DbSession
from vpnreg.web.background import spawn

__all__ = ["answer_lookup", "ready_index", "rebuild_on_new_serial"]

_LOG = logging.getLogger(__name__)


async def answer_lookup(
    request: Request,
    db: DbSession,
    *,
    address: str,
    port: int | None,
    at: dt.datetime | None,
    clock: Clock,
    config: ServiceConfig,
) -> LookupResult:
    """`services.lookup`'s answer at `at` (default now); ValidationFailed for a bad address or
    port. The index answers when no `at` is given, the app serves a feed that has published,
    and the index holds details for every registration covering the address."""
    ip = lookup_query(address, port)
    now = clock.now() if at is None else at
    if at is None:
        index = await _index(request)
        if index is not None:
            found = index.lookup(ip, port=port, now=now)
            if found is not None:
                return found
    return await run_in_threadpool(
        services.lookup, db, address=address, now=now, config=config, port=port
    )


def _indexed(state: State) -> tuple[FeedPublisher, LookupIndexHolder, tuple[str, int]] | None:
    """Where the app's index comes from (the feed's publisher, the holder, the serial held), or
    None when the app answers by SQL (no feed, VPNREG_LOOKUP_INDEX=0, nothing published)."""
    feed = getattr(state, "feed", None)
    if feed is None or not state.settings.lookup_index:
        return None
    key = feed.publisher.held_key()
    return None if key is None else (feed.publisher, state.lookup_index, key)


def _ready(state: State, holder: LookupIndexHolder, key: tuple[str, int]) -> LookupIndex | None:
    holder.note_asked()
    held = holder.held(key)
    if held is not None:
        return held
    # While the new serial is being built, or is about to be (loaded, not yet announced, and
    # the announcement starts the build, as this lookup was noted): the index of the one before.
    previous = holder.building()
    if previous is None and state.feed.settling():
        previous = holder.last()
    if previous is not None and previous.key[0] == key[0]:
        return previous
    return None


def ready_index(state: State) -> LookupIndex | None:
    """The index that answers now without any I/O, or None when a build is due first (or the
    app answers by SQL): the index of the serial held, or, while that one is being built, the
    index of the serial before (under a stream of publishes every lookup waited for a build,
    p50 0.8 s in bench_gateway_fanout)."""
    source = _indexed(state)
    return None if source is None else _ready(state, source[1], source[2])


async def _index(request: Request) -> LookupIndex | None:
    state = request.app.state
    source = _indexed(state)
    if source is None:
        return None
    publisher, holder, key = source
    ready = _ready(state, holder, key)
    if ready is not None:
        return ready
    # a publish since the last build (history() copies, so it is only asked for then)
    return await run_in_threadpool(_build, holder, publisher.history(), state.database)


def _build(
    holder: LookupIndexHolder, history: FeedHistory | None, database: Database
) -> LookupIndex | None:
    """The index of `history`, its details read from the primary (see the module's docstring)."""
    with database.session() as session:
        return holder.current(history, session)


def rebuild_on_new_serial(state: State) -> None:
    """Have the app's index rebuilt as soon as its feed holds a new serial (when lookups were
    answered since the last build), so that no lookup waits for that build."""
    feed = getattr(state, "feed", None)
    if feed is None or not state.settings.lookup_index:
        return

    def start() -> None:
        holder: LookupIndexHolder = state.lookup_index
        if holder.begin_rebuild():
            spawn(_rebuild(state, holder))

    feed.on_new_serial(start)


async def _rebuild(state: State, holder: LookupIndexHolder) -> None:
    try:
        await run_in_threadpool(_build, holder, state.feed.publisher.history(), state.database)
    except Exception:
        _LOG.exception("lookup index: rebuild after a publish failed; the next lookup builds it")
    finally:
        holder.end_rebuild()
