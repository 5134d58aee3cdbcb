"""The dry-run back end records would-be blocks, expires them with the clock, and blocks nothing."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from vpnreg.agent.enforce import DryRunBackend
from vpnreg.clock import FrozenClock
from vpnreg.core.policy import BlockKey

ip = ipaddress.ip_address
WG = BlockKey(ip("198.51.100.2"), ip("203.0.113.2"), 17, 51820)
ESP = BlockKey(ip("198.51.100.3"), ip("203.0.113.2"), 50)


def test_records_and_expires(clock: FrozenClock) -> None:
    b = DryRunBackend(clock, timeout=600)
    b.start()
    b.block([WG])
    clock.advance(dt.timedelta(minutes=4))
    b.block([ESP, WG])  # WG refreshed
    assert [k for _, k in b.would_block] == [WG, ESP, WG]
    assert {a.key: a.expires_in_s for a in b.active_blocks()} == {WG: 600.0, ESP: 600.0}
    clock.advance(dt.timedelta(minutes=10))
    assert b.active_blocks() == ()
    assert len(b.would_block) == 3  # the record stays


def test_unblock_matching_and_stop(clock: FrozenClock) -> None:
    b = DryRunBackend(clock)
    b.start()
    b.block([WG, ESP])
    assert b.unblock_matching(lambda k: k.ip_protocol == 50) == (ESP,)
    assert [a.key for a in b.active_blocks()] == [WG]
    b.unblock([WG, ESP])
    assert b.active_blocks() == ()
    b.block([WG])
    b.stop()
    assert (b.running, b.active_blocks()) == (False, ())


def test_refuses_nonpositive_timeout(clock: FrozenClock) -> None:
    with pytest.raises(ValueError, match="positive"):
        DryRunBackend(clock, timeout=0)
