"""Timers for the feed server's tests: a fake one that moves only when a test advances it, and
the real one reporting when something starts waiting (so a test never sleeps to line up)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vpnreg.web.feed import AsyncioTimer

#: Real seconds a test waits for the server to reach a state before failing (a hang guard).
HANG_GUARD_S = 10.0


@dataclass
class _Sleeper:
    deadline: float
    timeout: float
    loop: asyncio.AbstractEventLoop
    due: asyncio.Future[None]


def _fire(due: asyncio.Future[None]) -> None:
    if not due.done():
        due.set_result(None)


class FakeTimer:
    """A `vpnreg.web.feed.Timer` whose clock moves only on `advance`.

    A wait ends when its event is set or when `advance` carries the clock to its deadline.
    `sleepers()` lists the timeouts of the waits in progress, so a test can wait until the
    scheduler or a long poll has come to rest before it moves time.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()
        self._sleepers: list[_Sleeper] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        with self._lock:
            sleeper = _Sleeper(self._now + timeout, timeout, loop, loop.create_future())
            self._sleepers.append(sleeper)
        waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([waiter, sleeper.due], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            with self._lock:
                if sleeper in self._sleepers:
                    self._sleepers.remove(sleeper)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        """Move the clock on; every wait whose deadline is reached ends (and stops counting as
        a sleeper at once)."""
        with self._lock:
            self._now += seconds
            due = [s for s in self._sleepers if s.deadline <= self._now]
            self._sleepers = [s for s in self._sleepers if s.deadline > self._now]
        for sleeper in due:
            sleeper.loop.call_soon_threadsafe(_fire, sleeper.due)

    def sleepers(self) -> list[float]:
        """The timeouts of the waits in progress, sorted."""
        with self._lock:
            return sorted(s.timeout for s in self._sleepers)

    async def until(self, condition: Callable[[list[float]], bool], what: str) -> None:
        """Return once `condition(sleepers())` holds; fail after HANG_GUARD_S real seconds."""
        deadline = time.monotonic() + HANG_GUARD_S
        while not condition(self.sleepers()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.sleepers()}"
            await asyncio.sleep(0.001)

    async def resting(self, count: int) -> None:
        """Return once exactly `count` waits are in progress."""
        await self.until(lambda s: len(s) == count, f"{count} waits")


class ReportingTimer(AsyncioTimer):
    """The real timer, setting `waiting` whenever a wait begins."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        self.waiting.set()
        return await super().wait(event, timeout)
