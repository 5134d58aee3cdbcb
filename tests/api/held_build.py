"""A lookup index build held up on purpose, for the tests of what lookups do meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from vpnreg.registry.services import lookup_index


class HeldBuild:
    """Every `build_lookup_index` from now on waits, once entered, until `release()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._entered, self._release = threading.Event(), threading.Event()
        real = lookup_index.build_lookup_index

        def held_up(session: Any, history: Any) -> Any:
            self._entered.set()
            assert self._release.wait(10)
            return real(session, history)

        monkeypatch.setattr(lookup_index, "build_lookup_index", held_up)

    async def started(self, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._entered.is_set():
            assert time.monotonic() < deadline, "the build did not start"
            await asyncio.sleep(0.01)

    def release(self) -> None:
        self._release.set()
