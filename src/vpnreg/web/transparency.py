"""Audit transparency over HTTP (ADR 0008): the public signed checkpoints, and the scheduler that
signs one every few minutes.

`/transparency/checkpoints` (latest and history, newest first, a page at a time) and
`/transparency/checkpoints/latest` are public: no token, no login. Anyone holding `feed.pub` can
check them and, with an export, that the audit history was not rewritten
(`vpnreg audit verify --export`).

The `CheckpointScheduler` runs in the app's lifespan beside the feed's scheduler: every
`audit_checkpoint_interval_min` minutes it signs a checkpoint when events were appended since
the last one. A failure (database unreachable, key unreadable) is logged and retried at the next
tick; it never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, FastAPI, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from vpnreg.clock import Clock, SystemClock
from vpnreg.core.audit_checkpoint import Checkpoint
from vpnreg.registry.errors import Unavailable
from vpnreg.registry.services import transparency
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.settings import Settings
from vpnreg.web.feed import AsyncioTimer, Timer
from vpnreg.web.policy import EVERYONE, allow
from vpnreg.web.problems import MEDIA_TYPE
from vpnreg.web.reads import ReadDb

__all__ = ["CheckpointScheduler", "install_transparency", "router"]

_LOG = logging.getLogger(__name__)
#: Checkpoints per page unless the caller asks for fewer or more (up to the service's maximum).
DEFAULT_PAGE = 100

router = APIRouter(prefix="/transparency", tags=["transparency"], dependencies=[allow(EVERYONE)])


def _page_link(before: int, limit: int) -> str:
    return f"/transparency/checkpoints?before={before}&limit={limit}"


@router.get("/checkpoints", summary="Signed checkpoints of the audit chain, newest first")
def checkpoints(
    db: ReadDb,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=transparency.MAX_CHECKPOINT_PAGE)] = DEFAULT_PAGE,
) -> dict[str, Any]:
    """The latest checkpoint, and a page of the history (`before` a number: older ones).
    `next` links the following page, null on the last. Signed with the feed's key: check
    with `feed.pub` (`vpnreg audit verify --export FILE --checkpoint URL --trust feed.pub`)."""
    latest = transparency.latest_checkpoint(db)
    page = transparency.list_checkpoints(db, before=before, limit=limit)
    oldest = page[-1].number if page else None
    return {
        "latest": None if latest is None else latest.to_json(),
        "checkpoints": [c.to_json() for c in page],
        "next": _page_link(oldest, limit) if oldest is not None and oldest > 1 else None,
    }


@router.get(
    "/checkpoints/latest",
    summary="The newest signed checkpoint of the audit chain",
    responses={
        404: {
            "description": "`not-found`: no checkpoint has been signed yet.",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    },
)
def latest_checkpoint(db: ReadDb) -> dict[str, object]:
    """The newest checkpoint; 404 before the first one is signed."""
    latest = transparency.latest_checkpoint(db)
    if latest is None:
        raise HTTPException(404, "no audit checkpoint has been signed yet")
    return latest.to_json()


class CheckpointScheduler:
    """Signs a checkpoint every `interval_s` seconds when the chain moved (in a worker thread)."""

    def __init__(
        self,
        database: Database,
        key: Callable[[], Ed25519PrivateKey],
        *,
        interval_s: float,
        clock: Clock | None = None,
        timer: Timer | None = None,
    ) -> None:
        self._database = database
        self._key = key
        self._interval_s = interval_s
        self._clock = clock or SystemClock()
        self.timer: Timer = timer or AsyncioTimer()
        self._task: asyncio.Task[None] | None = None

    def run_once(self) -> Checkpoint | None:
        """One tick, blocking: the checkpoint signed, or None when the chain did not move."""
        with self._database.session() as session:
            return transparency.checkpoint_if_moved(
                session, now=self._clock.now(), private_key=self._key()
            )

    async def _tick(self) -> None:
        try:
            made = await run_in_threadpool(self.run_once)
        except asyncio.CancelledError:
            raise
        except Unavailable as err:
            _LOG.warning("audit checkpoint: %s; retrying in %.0f s", err, self._interval_s)
        except Exception:
            _LOG.exception("audit checkpoint failed; retrying in %.0f s", self._interval_s)
        else:
            if made is not None:
                _LOG.info("audit checkpoint %d: %d events", made.number, made.count)

    async def _schedule(self) -> None:
        # Never set: waiting on it is a pause measured by the timer.
        pause = asyncio.Event()
        while True:
            await self.timer.wait(pause, self._interval_s)
            await self._tick()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        self._task = asyncio.create_task(self._schedule(), name="vpnreg-audit-checkpoints")
        try:
            yield
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def install_transparency(
    app: FastAPI,
    settings: Settings,
    *,
    database: Database,
    key: Callable[[], Ed25519PrivateKey],
    clock: Clock | None = None,
    timer: Timer | None = None,
) -> CheckpointScheduler:
    """Serve /transparency from `app` and run the checkpoint scheduler in its lifespan
    (`app.state.checkpoints`)."""
    scheduler = CheckpointScheduler(
        database,
        key,
        interval_s=settings.audit_checkpoint_interval_min * 60.0,
        clock=clock,
        timer=timer,
    )
    app.include_router(router)
    app.include_router(APIRouter(lifespan=scheduler.lifespan))
    app.state.checkpoints = scheduler
    return scheduler
