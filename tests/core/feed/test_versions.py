"""FeedHistory serials and deltas, and apply(delta(a, b), a) == b end to end."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.feed.strategies import SESSION, entry_sets, fixed_key
from vpnreg.core.feed import (
    AllowlistEntry,
    EnforcementMode,
    EntryTable,
    FeedHistory,
    FeedState,
    Mode,
    apply_delta,
    dump_document,
    key_id,
    merge_deltas,
    set_hash,
    sign_delta,
    sign_snapshot,
    verify_document,
)
from vpnreg.core.feed.versions import HistoryDelta

KEY = fixed_key("history")
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}
T0 = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
ENFORCE = EnforcementMode.enforce_all()
DRY = EnforcementMode(Mode.DRY_RUN)


def state_of(entries: list[AllowlistEntry], serial: int = 1) -> FeedState:
    table = EntryTable.from_entries(entries)
    return FeedState(SESSION, serial, table.set_hash(), ENFORCE, T0, T0, table)


@given(entry_sets, entry_sets)
def test_apply_delta_of_a_to_b_gives_b(a: list[AllowlistEntry], b: list[AllowlistEntry]) -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0, entries=a)
    serial = history.commit(b, ENFORCE, T0 + dt.timedelta(seconds=1))
    steps = history.delta_since(1)
    assert steps is not None
    held = state_of(a)
    for step in steps:
        delta = verify_document(
            dump_document(
                sign_delta(
                    session_id=SESSION,
                    serial=step.serial,
                    previous_serial=step.previous_serial,
                    added=step.added,
                    removed=step.removed,
                    set_hash=step.set_hash,
                    mode=step.mode,
                    created=step.created,
                    expires=step.created + dt.timedelta(hours=1),
                    private_key=KEY,
                )
            ),
            trusted=TRUSTED,
            now=step.created,
            held=held.held(),
        )
        held = apply_delta(held, delta)  # type: ignore[arg-type]
    assert held.serial == serial
    assert held.entries == EntryTable.from_entries(b)
    assert held.set_hash == set_hash(b)


@settings(max_examples=50)
@given(st.lists(entry_sets, min_size=1, max_size=6))
def test_merged_deltas_take_any_kept_serial_to_the_current_set(
    states: list[list[AllowlistEntry]],
) -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0)
    seen = {1: EntryTable.empty()}
    for i, entries in enumerate(states):
        serial = history.commit(entries, ENFORCE, T0 + dt.timedelta(seconds=i))
        seen[serial] = EntryTable.from_entries(entries)
    for start, table in seen.items():
        steps = history.delta_since(start)
        assert steps is not None
        if not steps:
            assert start == history.serial
            continue
        merged = merge_deltas(steps)
        assert (merged.previous_serial, merged.serial) == (start, history.serial)
        result = table.apply(added=merged.added, removed=merged.removed)
        assert result == history.entries
        assert result.set_hash() == merged.set_hash


def test_new_history_starts_at_serial_one_enforcing_nothing() -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0)
    snap = history.snapshot()
    assert (snap.serial, len(snap.entries), snap.mode) == (1, 0, ENFORCE)
    assert snap.set_hash == set_hash([])


def test_commit_without_change_keeps_the_serial() -> None:
    entries = [_entry(1)]
    history = FeedHistory.new(session_id=SESSION, now=T0, entries=entries)
    assert history.commit(list(reversed(entries)), ENFORCE, T0 + dt.timedelta(hours=1)) == 1
    assert history.created == T0
    assert history.delta_since(1) == []


def test_mode_change_alone_is_a_new_serial() -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0)
    assert history.commit([], DRY, T0 + dt.timedelta(seconds=1)) == 2
    steps = history.delta_since(1)
    assert steps is not None
    assert [(len(s.added), len(s.removed), s.mode) for s in steps] == [(0, 0, DRY)]


def test_serials_increase_by_one_per_change() -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0)
    serials = [
        history.commit([_entry(i)], ENFORCE, T0 + dt.timedelta(seconds=i)) for i in (1, 2, 3)
    ]
    assert serials == [2, 3, 4]


def test_created_never_goes_backwards() -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0)
    history.commit([_entry(1)], ENFORCE, T0 - dt.timedelta(hours=1))
    assert history.created == T0


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        pytest.param(6, [], id="current"),
        pytest.param(5, [6], id="one-behind"),
        pytest.param(3, [4, 5, 6], id="oldest-kept"),
        pytest.param(2, None, id="too-old"),
        pytest.param(7, None, id="from-the-future"),
        pytest.param(0, None, id="zero"),
    ],
)
def test_delta_since_is_bounded(since: int, expected: list[int] | None) -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0, max_deltas=3)
    for i in range(1, 6):
        history.commit([_entry(i)], ENFORCE, T0 + dt.timedelta(seconds=i))
    assert history.serial == 6
    assert len(history.deltas) == 3
    steps = history.delta_since(since)
    assert (None if steps is None else [s.serial for s in steps]) == expected


def test_history_rebuilds_from_its_parts() -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0)
    for i in range(1, 4):
        history.commit([_entry(i)], ENFORCE, T0 + dt.timedelta(seconds=i))
    rebuilt = FeedHistory(
        session_id=history.session_id,
        serial=history.serial,
        entries=history.entries,
        mode=history.mode,
        created=history.created,
        deltas=history.deltas,
        max_deltas=history.max_deltas,
    )
    assert rebuilt.delta_since(1) == history.delta_since(1)
    assert rebuilt.snapshot() == history.snapshot()


@pytest.mark.parametrize(("given", "limit", "kept"), [(2, 3, 2), (3, 3, 3), (4, 3, 3), (2, 0, 0)])
def test_rebuild_keeps_the_newest_deltas_up_to_the_limit(given: int, limit: int, kept: int) -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0, max_deltas=10)
    for i in range(1, given + 1):
        history.commit([_entry(i)], ENFORCE, T0 + dt.timedelta(seconds=i))
    rebuilt = FeedHistory(
        session_id=history.session_id,
        serial=history.serial,
        entries=history.entries,
        mode=history.mode,
        created=history.created,
        deltas=history.deltas,
        max_deltas=limit,
    )
    assert [d.serial for d in rebuilt.deltas] == [d.serial for d in history.deltas][given - kept :]


def test_rebuild_refuses_gaps() -> None:
    step = HistoryDelta(2, 3, EntryTable.empty(), EntryTable.empty(), set_hash([]), ENFORCE, T0)
    with pytest.raises(ValueError, match="consecutive"):
        FeedHistory(
            session_id=SESSION,
            serial=5,
            entries=EntryTable.empty(),
            mode=ENFORCE,
            created=T0,
            deltas=[step],
        )


def test_snapshot_of_history_verifies() -> None:
    history = FeedHistory.new(session_id=SESSION, now=T0, entries=[_entry(1), _entry(2)])
    snap = history.snapshot()
    doc = sign_snapshot(
        session_id=snap.session_id,
        serial=snap.serial,
        entries=snap.entries,
        mode=snap.mode,
        created=snap.created,
        expires=snap.created + dt.timedelta(hours=1),
        private_key=KEY,
    )
    verified = verify_document(dump_document(doc), trusted=TRUSTED, now=T0)
    assert verified.set_hash == snap.set_hash


def _entry(i: int) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=ipaddress.ip_network(f"192.0.2.{i * 4}/30"),
        peers=(),
        registration_id=i,
        valid_until=dt.datetime(2027, 1, 31, 19, tzinfo=dt.UTC),
    )
