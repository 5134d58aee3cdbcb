"""Where the published feed lives: its rows, and the histories rebuilt from them.

Tables (migration 0002): feed_state (one row: session, serial, set hash, mode, state time,
max deltas), feed_entries (the current set, one 74-byte v2 record per row, ADR 0006, with its
peer encodings) and feed_deltas (the last `max_deltas` steps of the current session). A
rebuilt FeedHistory is cached in this process keyed by (session, serial, set hash, mode), so
a publisher does not reread a large set on every call. Nothing here decides what to publish
(vpnreg.registry.services.feed does); callers hold the transaction.
"""

from __future__ import annotations

import datetime as dt
import struct
import threading
from collections.abc import Mapping

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from vpnreg.core.feed import (
    RECORD_DTYPE,
    RECORD_SIZE,
    EnforcementMode,
    EntryTable,
    FeedHistory,
    HistoryDelta,
    NotApplicable,
)
from vpnreg.core.feed.entry import PEERS_DIGEST_AT
from vpnreg.registry.models import FeedDeltaRow, FeedEntryRow, FeedStateRow

__all__ = [
    "StateKey",
    "advance_history",
    "begin_snapshot_read",
    "copy_history",
    "forget_histories",
    "load_history",
    "read_state",
    "remember",
    "state_key",
    "write_fresh",
    "write_state",
    "write_step",
]

#: Rows per statement when inserting or deleting entries (keeps under bind-parameter limits).
_BATCH = 500
_PEERS_HEAD = struct.Struct(">32sI")
_STATE_ID = 1
_CACHE_SIZE = 4

#: (session id, serial): what tells one published state from another.
StateKey = tuple[str, int]

_cache_lock = threading.Lock()
_cache: dict[tuple[str, int, str, bytes], FeedHistory] = {}


def _cache_key(history: FeedHistory) -> tuple[str, int, str, bytes]:
    return (history.session_id, history.serial, history.entries.set_hash(), history.mode.encode())


def copy_history(history: FeedHistory, max_deltas: int | None = None) -> FeedHistory:
    """A copy the caller may commit to (optionally keeping another number of deltas)."""
    # FeedHistory.commit mutates; entry tables and deltas are immutable, so a shallow copy will do.
    return FeedHistory(
        session_id=history.session_id,
        serial=history.serial,
        entries=history.entries,
        mode=history.mode,
        created=history.created,
        deltas=list(history.deltas),
        max_deltas=history.max_deltas if max_deltas is None else max_deltas,
    )


def remember(history: FeedHistory) -> None:
    """Cache `history` (a copy) for the next load of the same stored state."""
    with _cache_lock:
        _cache[_cache_key(history)] = copy_history(history)
        while len(_cache) > _CACHE_SIZE:
            del _cache[next(iter(_cache))]


def forget_histories() -> None:
    """Empty the cache, so the next load rebuilds from rows."""
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple[str, int, str, bytes]) -> FeedHistory | None:
    with _cache_lock:
        found = _cache.get(key)
    return copy_history(found) if found is not None else None


def _pack_peers(peers: Mapping[bytes, bytes]) -> bytes:
    return b"".join(_PEERS_HEAD.pack(d, len(p)) + p for d, p in sorted(peers.items()))


def _unpack_peers(blob: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    at = 0
    while at < len(blob):
        digest, size = _PEERS_HEAD.unpack_from(blob, at)
        at += _PEERS_HEAD.size
        out[digest] = blob[at : at + size]
        at += size
    return out


def _table(records: bytes, peers: Mapping[bytes, bytes]) -> EntryTable:
    return EntryTable.from_records(np.frombuffer(records, dtype=RECORD_DTYPE), peers)


def _delta_from_row(row: FeedDeltaRow) -> HistoryDelta:
    peers = _unpack_peers(row.peers)
    return HistoryDelta(
        previous_serial=row.previous_serial,
        serial=row.serial,
        added=_table(row.added, peers),
        removed=_table(row.removed, peers),
        set_hash=row.set_hash,
        mode=EnforcementMode.decode(row.mode),
        created=row.created,
    )


def _consecutive_tail(rows: list[FeedDeltaRow], serial: int) -> list[FeedDeltaRow]:
    """The longest run of single steps ending at `serial` (rows sorted by serial)."""
    kept: list[FeedDeltaRow] = []
    expected = serial
    for row in reversed(rows):
        if row.serial != expected or row.previous_serial != expected - 1:
            break
        kept.append(row)
        expected -= 1
    kept.reverse()
    return kept


def begin_snapshot_read(session: Session) -> None:
    """Make the session's next transaction see one snapshot of the database in all its
    statements (call before its first statement). PostgreSQL: REPEATABLE READ; SQLite's
    transactions are snapshots already (a deferred BEGIN in WAL mode, vpnreg.registry.db)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def read_state(session: Session, *, lock: bool) -> FeedStateRow | None:
    """The feed_state row (None before the first publish); `lock` takes it FOR UPDATE."""
    query = select(FeedStateRow).where(FeedStateRow.id == _STATE_ID)
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def state_key(state: FeedStateRow) -> StateKey:
    return (state.session_id, state.serial)


def advance_history(session: Session, held: FeedHistory, state: FeedStateRow) -> FeedHistory | None:
    """`held` brought to the stored `state` by the stored deltas after it, or None when they do
    not lead there (another session, a step no longer kept, a set hash that differs): then
    `load_history`. A server process following another's publishes reads the few new deltas,
    not every entry (found by bench_gateway_fanout: reloading every entry on each serial made
    the following processes' gateways wait a publish longer). `held` is not changed."""
    if held.session_id != state.session_id or held.serial >= state.serial:
        return None
    rows = list(
        session.scalars(
            select(FeedDeltaRow)
            .where(FeedDeltaRow.session_id == state.session_id)
            .where(FeedDeltaRow.serial > held.serial)
            .order_by(FeedDeltaRow.serial)
        ).all()
    )
    steps = _consecutive_tail(rows, state.serial)
    if not steps or steps[0].previous_serial != held.serial:
        return None
    deltas = [_delta_from_row(r) for r in steps]
    entries = held.entries
    try:
        for delta in deltas:
            entries = entries.apply(added=delta.added, removed=delta.removed)
    except NotApplicable:
        return None
    if entries.set_hash() != state.set_hash:
        return None
    return _held_state(state, entries, [*held.deltas, *deltas])


def load_history(session: Session, state: FeedStateRow) -> FeedHistory:
    """The history `state` names: from the cache, or rebuilt from the rows and checked against
    the stored set hash."""
    key = (state.session_id, state.serial, state.set_hash, bytes(state.mode))
    cached = _cached(key)
    if cached is not None and cached.max_deltas == state.max_deltas:
        return cached
    rows = session.execute(select(FeedEntryRow.record, FeedEntryRow.peers)).all()
    peers = {bytes(r.record[PEERS_DIGEST_AT:]): bytes(r.peers) for r in rows if r.peers}
    entries = _table(b"".join(bytes(r.record) for r in rows), peers)
    if entries.set_hash() != state.set_hash:
        raise RuntimeError(
            "the stored feed entries do not hash to the stored set hash; reset the feed"
        )
    delta_rows = list(
        session.scalars(
            select(FeedDeltaRow)
            .where(FeedDeltaRow.session_id == state.session_id)
            .order_by(FeedDeltaRow.serial)
        ).all()
    )
    deltas = [_delta_from_row(r) for r in _consecutive_tail(delta_rows, state.serial)]
    return _held_state(state, entries, deltas)


def _held_state(
    state: FeedStateRow, entries: EntryTable, deltas: list[HistoryDelta]
) -> FeedHistory:
    """The history of the stored `state` with these entries and deltas, remembered for the
    next load (a copy is returned)."""
    history = FeedHistory(
        session_id=state.session_id,
        serial=state.serial,
        entries=entries,
        mode=EnforcementMode.decode(bytes(state.mode)),
        created=state.created,
        deltas=deltas,
        max_deltas=state.max_deltas,
    )
    remember(history)
    return copy_history(history)


def _entry_rows(table: EntryTable) -> list[dict[str, bytes | None]]:
    raw = table.encoded()
    rows: list[dict[str, bytes | None]] = []
    for at in range(0, len(raw), RECORD_SIZE):
        record = raw[at : at + RECORD_SIZE]
        rows.append({"record": record, "peers": table.peers.get(record[PEERS_DIGEST_AT:])})
    return rows


def _insert_entries(session: Session, table: EntryTable) -> None:
    rows = _entry_rows(table)
    for at in range(0, len(rows), _BATCH):
        session.execute(insert(FeedEntryRow), rows[at : at + _BATCH])


def _delete_entries(session: Session, table: EntryTable) -> None:
    raw = table.encoded()
    records = [raw[at : at + RECORD_SIZE] for at in range(0, len(raw), RECORD_SIZE)]
    for at in range(0, len(records), _BATCH):
        chunk = records[at : at + _BATCH]
        session.execute(delete(FeedEntryRow).where(FeedEntryRow.record.in_(chunk)))


def write_state(session: Session, state: FeedStateRow | None, history: FeedHistory) -> None:
    """Make the feed_state row describe `history` (creating it when `state` is None)."""
    values: dict[str, str | int | bytes | dt.datetime] = {
        "session_id": history.session_id,
        "serial": history.serial,
        "set_hash": history.entries.set_hash(),
        "mode": history.mode.encode(),
        "created": history.created,
        "max_deltas": history.max_deltas,
    }
    if state is None:
        session.add(FeedStateRow(id=_STATE_ID, **values))
    else:
        for name, value in values.items():
            setattr(state, name, value)
    session.flush()


def write_fresh(session: Session, state: FeedStateRow | None, history: FeedHistory) -> None:
    """Store `history` (serial 1 of a new session) in place of whatever was stored."""
    session.execute(delete(FeedDeltaRow))
    session.execute(delete(FeedEntryRow))
    _insert_entries(session, history.entries)
    write_state(session, state, history)


def write_step(session: Session, state: FeedStateRow, history: FeedHistory) -> None:
    """Store the newest step of `history` (one serial after what `state` holds): only the
    changed entry rows, the delta row, and the trimmed delta history."""
    step = history.deltas[-1] if history.deltas else None
    if step is None or step.serial != history.serial:
        raise RuntimeError("a feed step to store needs the delta that made it")
    _delete_entries(session, step.removed)
    _insert_entries(session, step.added)
    session.execute(
        insert(FeedDeltaRow).values(
            serial=step.serial,
            session_id=history.session_id,
            previous_serial=step.previous_serial,
            added=step.added.encoded(),
            removed=step.removed.encoded(),
            peers=_pack_peers({**step.added.peers, **step.removed.peers}),
            set_hash=step.set_hash,
            mode=step.mode.encode(),
            created=step.created,
        )
    )
    session.execute(
        delete(FeedDeltaRow).where(
            (FeedDeltaRow.session_id != history.session_id)
            | (FeedDeltaRow.serial <= history.serial - history.max_deltas)
        )
    )
    write_state(session, state, history)
