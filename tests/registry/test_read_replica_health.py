"""Where the public reads go while the replica refuses connections (ReplicaHealth, ADR 0017):
the primary stands in for `retry_s`, then the replica is tried again; one warning per outage."""

from __future__ import annotations

import logging

import pytest

from vpnreg.registry.read_replica import ReadStatus, ReplicaHealth


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_replica_is_tried_again_only_after_the_retry_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vpnreg.registry.read_replica")
    ticks = Ticks()
    health = ReplicaHealth(5.0, clock=ticks)
    assert health.may_try_replica()
    assert health.status() == ReadStatus("replica", 0, None)

    health.replica_refused(OSError("connection refused\n  on the socket"))
    health.fell_back()
    assert not health.may_try_replica()
    ticks.now += 4.9
    assert not health.may_try_replica()
    health.fell_back()
    ticks.now += 0.1
    assert health.may_try_replica()
    health.replica_refused(OSError("still refused"))  # tried again: still down
    health.fell_back()
    assert not health.may_try_replica()
    assert health.status() == ReadStatus("primary", 3, "still refused")
    assert health.status().to_json() == {"serving": "primary", "fallbacks": 3}

    ticks.now += 5.0
    health.replica_connected()
    assert health.may_try_replica()
    assert health.status() == ReadStatus("replica", 3, None)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # one when it went, one when it came back
    assert "unreachable (connection refused on the socket)" in messages[0]
    assert "reachable again" in messages[1]
