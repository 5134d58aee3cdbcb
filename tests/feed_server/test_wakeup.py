"""The long polls' staggered wake-up (vpnreg.web.wakeup): every waiter is woken, a group per turn
of the loop, and work that arrives meanwhile runs between the groups."""

from __future__ import annotations

import asyncio

import pytest

from vpnreg.web.wakeup import Wakeup


async def _waiters(wakeup: Wakeup, count: int, log: list[str]) -> list[asyncio.Task[None]]:
    async def wait(name: str, event: asyncio.Event) -> None:
        await event.wait()
        log.append(name)

    tasks = [asyncio.create_task(wait(f"w{i}", wakeup.event())) for i in range(count)]
    await asyncio.sleep(0)  # every task is now waiting on its event
    return tasks


def test_every_waiter_is_woken_a_group_per_turn() -> None:
    asyncio.run(_every_waiter_is_woken_a_group_per_turn())


async def _every_waiter_is_woken_a_group_per_turn() -> None:
    wakeup, log = Wakeup(groups=4), []
    tasks = await _waiters(wakeup, 40, log)
    wakeup.signal()
    turns = 0
    while len(log) < 40:
        await asyncio.sleep(0)
        turns += 1
        assert turns <= 8, log
    await asyncio.gather(*tasks)
    assert sorted(log) == sorted(f"w{i}" for i in range(40))


def test_other_work_runs_between_the_groups() -> None:
    """Work that becomes ready after the signal (a new request read by the loop) runs before
    most waiters are answered; with one event it would run after all of them."""
    asyncio.run(_other_work_runs_between_the_groups())


async def _other_work_runs_between_the_groups() -> None:
    wakeup, log = Wakeup(groups=8), []
    tasks = await _waiters(wakeup, 80, log)
    wakeup.signal()
    asyncio.get_running_loop().call_soon(log.append, "other")
    await asyncio.gather(*tasks)
    assert 0 < log.index("other") <= 20, log


def test_a_single_group_wakes_everyone_at_once() -> None:
    asyncio.run(_a_single_group_wakes_everyone_at_once())


async def _a_single_group_wakes_everyone_at_once() -> None:
    wakeup, log = Wakeup(groups=1), []
    tasks = await _waiters(wakeup, 10, log)
    wakeup.signal()
    asyncio.get_running_loop().call_soon(log.append, "other")
    await asyncio.gather(*tasks)
    assert log[-1] == "other"


def test_waiters_after_a_signal_wait_for_the_next() -> None:
    asyncio.run(_waiters_after_a_signal_wait_for_the_next())


async def _waiters_after_a_signal_wait_for_the_next() -> None:
    wakeup = Wakeup(groups=3)
    before = [wakeup.event() for _ in range(3)]
    wakeup.signal()
    after = [wakeup.event() for _ in range(3)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert all(e.is_set() for e in before)
    assert not any(e.is_set() for e in after)
    wakeup.signal()
    for _ in range(3):
        await asyncio.sleep(0)
    assert all(e.is_set() for e in after)


def test_groups_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Wakeup(groups=0)
