"""Fire-and-forget work on the server's event loop: `spawn`.

The loop holds a task only weakly, so a task nobody awaits may be collected before it ends.
`spawn` keeps each one in a module-level set until it is done: the token cache's background
checks (web.auth) and the lookup index's rebuild after a publish (web.lookup) start theirs here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["running", "settled", "spawn"]

_RUNNING: set[asyncio.Task[Any]] = set()


def spawn(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run `work` on the running loop without awaiting it, holding its task until it ends.
    `work` handles its own errors: nobody reads the task's result."""
    task = asyncio.get_running_loop().create_task(work)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task


def running() -> int:
    """How many spawned tasks have not ended yet."""
    return len(_RUNNING)


async def settled() -> None:
    """Wait until every task spawned so far has ended (what a test awaits)."""
    while _RUNNING:
        await asyncio.gather(*_RUNNING, return_exceptions=True)
