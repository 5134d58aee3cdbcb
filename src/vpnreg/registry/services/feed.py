"""The published allowlist feed: a core FeedHistory persisted in the database, and publishing.

`publish` is the one way the feed moves: it lets time act first (advance_time), compares the
registered set (registered_entries, the one definition of "registered") with the set held by
the feed, and commits a new serial with its delta only when they differ. `set_mode` changes the
signed enforcement mode (the regulator's kill switch), audited, in the same transaction as the
serial it makes. `reset_feed` starts a new session (gateways fetch a snapshot).

Tables (migration 0002): feed_state (one row: session, serial, set hash, mode, state time),
feed_entries (the current set, one 64-byte record per row) and feed_deltas (the last
`max_deltas` steps). A rebuilt history is cached in memory keyed by (session, serial, set hash,
mode), so a publisher does not reread a large set on every call.

`FeedPublisher` wraps all of this for a long-running process (the web app): it owns an engine,
keeps the current history in memory and authenticates API tokens, so the web layer never needs
SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from vpnreg.clock import Clock
from vpnreg.core.feed import (
    RECORD_DTYPE,
    RECORD_SIZE,
    EnforcementMode,
    EntryTable,
    FeedHistory,
    HistoryDelta,
    Mode,
    VpnProtocol,
)
from vpnreg.core.feed.versions import DEFAULT_MAX_DELTAS
from vpnreg.core.review import Role, State, time_transition
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import (
    ApiToken,
    Application,
    AuditHead,
    FeedDeltaRow,
    FeedEntryRow,
    FeedStateRow,
)
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.lookup import registered_entries
from vpnreg.registry.services.timeline import _TIMED_STATES, TimeChange, advance_time
from vpnreg.registry.services.transaction import service_transaction

__all__ = [
    "FeedPublisher",
    "PublishResult",
    "current_feed",
    "publish",
    "reset_feed",
    "set_mode",
]

#: Rows per statement when inserting or deleting entries (keeps under bind-parameter limits).
_BATCH = 500
_PEERS_HEAD = struct.Struct(">32sI")
_STATE_ID = 1


@dataclass(frozen=True)
class PublishResult:
    """What a publish (or a mode change, or a reset) left the feed at."""

    session_id: str
    serial: int
    #: The serial before this call (0 when the feed was created by it).
    previous_serial: int
    set_hash: str
    entries: int
    added: int
    removed: int
    mode: EnforcementMode
    created: dt.datetime
    time_changes: tuple[TimeChange, ...] = ()

    @property
    def changed(self) -> bool:
        return self.serial != self.previous_serial


# -- persistence -------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[tuple[str, int, str, bytes], FeedHistory] = {}
_CACHE_SIZE = 4


def _cache_key(history: FeedHistory) -> tuple[str, int, str, bytes]:
    return (history.session_id, history.serial, history.entries.set_hash(), history.mode.encode())


def _rebuild(
    *,
    session_id: str,
    serial: int,
    entries: EntryTable,
    mode: EnforcementMode,
    created: dt.datetime,
    deltas: Iterable[HistoryDelta],
    max_deltas: int,
) -> FeedHistory:
    """FeedHistory(...) keeping the last `max_deltas` deltas."""
    return FeedHistory(
        session_id=session_id,
        serial=serial,
        entries=entries,
        mode=mode,
        created=created,
        deltas=list(deltas),
        max_deltas=max_deltas,
    )


def _copy(history: FeedHistory, max_deltas: int | None = None) -> FeedHistory:
    # FeedHistory.commit mutates; entry tables and deltas are immutable, so a shallow copy will do.
    return _rebuild(
        session_id=history.session_id,
        serial=history.serial,
        entries=history.entries,
        mode=history.mode,
        created=history.created,
        deltas=history.deltas,
        max_deltas=history.max_deltas if max_deltas is None else max_deltas,
    )


def _remember(history: FeedHistory) -> None:
    with _cache_lock:
        _cache[_cache_key(history)] = _copy(history)
        while len(_cache) > _CACHE_SIZE:
            del _cache[next(iter(_cache))]


def _cached(key: tuple[str, int, str, bytes]) -> FeedHistory | None:
    with _cache_lock:
        found = _cache.get(key)
    return _copy(found) if found is not None else None


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


def _state_row(session: Session, *, lock: bool) -> FeedStateRow | None:
    query = select(FeedStateRow).where(FeedStateRow.id == _STATE_ID)
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def _load(session: Session, state: FeedStateRow) -> FeedHistory:
    key = (state.session_id, state.serial, state.set_hash, bytes(state.mode))
    cached = _cached(key)
    if cached is not None and cached.max_deltas == state.max_deltas:
        return cached
    rows = session.execute(select(FeedEntryRow.record, FeedEntryRow.peers)).all()
    peers = {bytes(r.record[32:]): bytes(r.peers) for r in rows if r.peers}
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
    history = _rebuild(
        session_id=state.session_id,
        serial=state.serial,
        entries=entries,
        mode=EnforcementMode.decode(bytes(state.mode)),
        created=state.created,
        deltas=[_delta_from_row(r) for r in _consecutive_tail(delta_rows, state.serial)],
        max_deltas=state.max_deltas,
    )
    _remember(history)
    return _copy(history)


def _entry_rows(table: EntryTable) -> list[dict[str, bytes | None]]:
    raw = table.encoded()
    rows: list[dict[str, bytes | None]] = []
    for at in range(0, len(raw), RECORD_SIZE):
        record = raw[at : at + RECORD_SIZE]
        rows.append({"record": record, "peers": table.peers.get(record[32:])})
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


def _write_state(session: Session, state: FeedStateRow | None, history: FeedHistory) -> None:
    values = {
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


def _write_fresh(session: Session, state: FeedStateRow | None, history: FeedHistory) -> None:
    """Store `history` (serial 1 of a new session) in place of whatever was stored."""
    session.execute(delete(FeedDeltaRow))
    session.execute(delete(FeedEntryRow))
    _insert_entries(session, history.entries)
    _write_state(session, state, history)


def _write_step(session: Session, state: FeedStateRow, history: FeedHistory) -> None:
    """Store the newest step of `history` (one serial after what `state` holds)."""
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
    _write_state(session, state, history)


def _result(
    history: FeedHistory, previous_serial: int, changes: Iterable[TimeChange] = ()
) -> PublishResult:
    added = removed = 0
    if previous_serial and history.serial == previous_serial + 1 and history.deltas:
        step = history.deltas[-1]
        added, removed = len(step.added), len(step.removed)
    elif not previous_serial:
        added = len(history.entries)
    return PublishResult(
        session_id=history.session_id,
        serial=history.serial,
        previous_serial=previous_serial,
        set_hash=history.entries.set_hash(),
        entries=len(history.entries),
        added=added,
        removed=removed,
        mode=history.mode,
        created=history.created,
        time_changes=tuple(changes),
    )


def _new_session_id() -> str:
    return uuid.uuid4().hex


def _commit(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int,
    mode: Callable[[EnforcementMode], EnforcementMode] | None = None,
    audit: Callable[[FeedHistory, EnforcementMode], None] | None = None,
) -> tuple[FeedHistory, int]:
    """In the caller's transaction: lock the feed, commit the registered set (and mode)."""
    state = _state_row(session, lock=True)
    table = EntryTable.from_entries(registered_entries(session, now=now, config=config))
    if state is None:
        first_mode = EnforcementMode.enforce_all()
        history = FeedHistory.new(
            session_id=_new_session_id(),
            now=now,
            entries=table,
            mode=mode(first_mode) if mode else first_mode,
            max_deltas=max_deltas,
        )
        if audit is not None:
            audit(history, first_mode)
        _write_fresh(session, state, history)
        return history, 0
    history = _load(session, state)
    previous, before_mode = history.serial, history.mode
    if history.max_deltas != max_deltas:
        history = _copy(history, max_deltas)
    history.commit(table, mode(history.mode) if mode else history.mode, now)
    if audit is not None:
        audit(history, before_mode)
    if history.serial != previous:
        _write_step(session, state, history)
    elif history.max_deltas != state.max_deltas:
        _write_state(session, state, history)
    return history, previous


def _time_due(session: Session, now: dt.datetime, config: ServiceConfig) -> bool:
    """Whether advance_time would move any registration at `now` (its own first test)."""
    # Its own short transaction, ended as advance_time ends its (on SQLite each holds the lock).
    with service_transaction(session):
        rows = session.execute(
            select(Application.state, Application.valid_from, Application.valid_until).where(
                Application.state.in_(_TIMED_STATES)
            )
        ).all()
    return any(
        valid_from is not None
        and valid_until is not None
        and time_transition(
            state=State(state), valid_from=valid_from, valid_until=valid_until, at=now, tz=config.tz
        )
        is not None
        for state, valid_from, valid_until in rows
    )


def _publish(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> tuple[PublishResult, FeedHistory, int | None]:
    # advance_time locks every timed registration and loads it with its prefixes and peers;
    # the web server publishes after every change, so look first (plain columns, no lock)
    # whether any step is due at all. It decides again under its lock.
    changes = (
        advance_time(session, now=now, config=config) if _time_due(session, now, config) else []
    )
    with service_transaction(session):
        # Read before the set: a change committed in between is published now and again
        # noticed later (harmless), never missed.
        seq = _audit_seq(session)
        history, previous = _commit(session, now=now, config=config, max_deltas=max_deltas)
    _remember(history)
    return _result(history, previous, changes), history, seq


# -- services ----------------------------------------------------------------------------------


def publish(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> PublishResult:
    """Let time act (advance_time), then commit the registered set as a new serial if it
    differs from the published one. The first publish creates the feed (serial 1, enforce)."""
    result, _, _ = _publish(session, now=now, config=config, max_deltas=max_deltas)
    return result


def current_feed(session: Session) -> FeedHistory | None:
    """The published history as stored (None before the first publish); nothing is changed."""
    state = _state_row(session, lock=False)
    return None if state is None else _load(session, state)


def _parse_mode(
    mode: Mode | str, protocol: VpnProtocol | str | None
) -> tuple[Mode, VpnProtocol | None]:
    problems: list[FieldError] = []
    chosen_mode: Mode | None = None
    chosen_protocol: VpnProtocol | None = None
    try:
        chosen_mode = Mode(mode)
    except ValueError:
        problems.append(
            FieldError("mode", "unknown_mode", "mode must be enforce or dry-run", str(mode))
        )
    if protocol is not None:
        try:
            chosen_protocol = VpnProtocol(protocol)
        except ValueError:
            names = ", ".join(p.value for p in VpnProtocol)
            problems.append(
                FieldError(
                    "protocol",
                    "unknown_protocol",
                    f"protocol must be one of {names}",
                    str(protocol),
                )
            )
    if problems or chosen_mode is None:
        raise ValidationFailed(problems)
    return chosen_mode, chosen_protocol


def set_mode(
    session: Session,
    *,
    mode: Mode | str,
    protocol: VpnProtocol | str | None = None,
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> PublishResult:
    """The regulator sets the signed enforcement mode, for one protocol or for all.

    Without `protocol` this is the national switch: the default becomes `mode` and every
    per-protocol override is dropped, so nothing is left enforcing (or dry-running) against it.
    With `protocol`, only that protocol's override is set. Audited as "feed.mode"; pending
    registry changes are published in the same serial.
    """
    require_role(actor, Role.REGULATOR)
    chosen, proto = _parse_mode(mode, protocol)

    def change(current: EnforcementMode) -> EnforcementMode:
        if proto is None:
            return EnforcementMode(chosen)
        overrides: dict[str, Mode] = {str(p): m for p, m in current.per_protocol.items()}
        overrides[str(proto)] = chosen
        return EnforcementMode(current.default, overrides)

    def audit(history: FeedHistory, before: EnforcementMode) -> None:
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="feed.mode",
            object_type="feed",
            object_id=history.session_id,
            before=before.to_json(),
            after={**history.mode.to_json(), "serial": history.serial},
        )

    changes = advance_time(session, now=now, config=config)
    with service_transaction(session):
        history, previous = _commit(
            session, now=now, config=config, max_deltas=max_deltas, mode=change, audit=audit
        )
    _remember(history)
    return _result(history, previous, changes)


def reset_feed(
    session: Session,
    *,
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> PublishResult:
    """Start a new feed session holding the registered set (regulator or admin; audited).

    The mode carries over, and the new state's time is never earlier than the old one's, so
    gateways accept the new session instead of refusing it as a rollback.
    """
    require_role(actor, Role.REGULATOR, Role.ADMIN)
    changes = advance_time(session, now=now, config=config)
    with service_transaction(session):
        state = _state_row(session, lock=True)
        old = _load(session, state) if state is not None else None
        table = EntryTable.from_entries(registered_entries(session, now=now, config=config))
        history = FeedHistory.new(
            session_id=_new_session_id(),
            now=max(now, old.created) if old is not None else now,
            entries=table,
            mode=old.mode if old is not None else None,
            max_deltas=max_deltas,
        )
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="feed.reset",
            object_type="feed",
            object_id=history.session_id,
            before=None if old is None else {"session_id": old.session_id, "serial": old.serial},
            after={"session_id": history.session_id, "serial": history.serial},
        )
        _write_fresh(session, state, history)
    _remember(history)
    return _result(history, 0, changes)


# -- a publisher for long-running processes ---------------------------------------------------


class FeedPublisher:
    """The feed of one database for a server process: publishes, and holds the current history.

    Every method opens its own session and is safe to call from worker threads. `history()`
    returns the held copy without touching the database; `refresh()` rereads it when another
    process (a cron `vpnreg feed publish`, another worker) has moved the feed.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        config: ServiceConfig,
        clock: Clock,
        max_deltas: int = DEFAULT_MAX_DELTAS,
    ) -> None:
        from vpnreg.registry.db import make_session_factory

        self._sessions = make_session_factory(engine)
        self._engine = engine
        self._config = config
        self._clock = clock
        self._max_deltas = max_deltas
        self._lock = threading.Lock()
        self._history: FeedHistory | None = None
        self._audit_seq: int | None = None

    @classmethod
    def for_url(
        cls,
        database_url: str,
        *,
        config: ServiceConfig,
        clock: Clock,
        max_deltas: int = DEFAULT_MAX_DELTAS,
    ) -> FeedPublisher:
        from vpnreg.registry.db import make_engine

        # No pool: the publisher works in a thread that a server shutdown does not wait for, and
        # a pooled connection it still held would outlive close() until the garbage collector.
        # Without a pool every connection closes when its session does (once a second: cheap).
        engine = make_engine(database_url, poolclass=NullPool)
        return cls(engine=engine, config=config, clock=clock, max_deltas=max_deltas)

    @property
    def clock(self) -> Clock:
        return self._clock

    def close(self) -> None:
        self._engine.dispose()

    def history(self) -> FeedHistory | None:
        """The held history (a copy the caller may keep); None before the first load."""
        with self._lock:
            return _copy(self._history) if self._history is not None else None

    def _hold(self, history: FeedHistory, audit_seq: int | None) -> bool:
        with self._lock:
            old = self._history
            self._history = _copy(history)
            if audit_seq is not None:
                self._audit_seq = audit_seq
        return old is None or (old.session_id, old.serial) != (history.session_id, history.serial)

    def publish(self) -> tuple[PublishResult, bool]:
        """Publish now; (the result, whether the held serial or session moved)."""
        with self._sessions() as session:
            result, history, seq = _publish(
                session, now=self._clock.now(), config=self._config, max_deltas=self._max_deltas
            )
        return result, self._hold(history, seq)

    def refresh(self) -> bool:
        """Reread the stored feed if it moved since it was held; True when it did."""
        with self._sessions() as session:
            state = _state_row(session, lock=False)
            held = self.history()
            if state is None or (
                held is not None
                and (held.session_id, held.serial) == (state.session_id, state.serial)
            ):
                session.rollback()
                return False
            history = _load(session, state)
            session.rollback()
        return self._hold(history, None)

    def registry_changed(self) -> bool:
        """Whether any audited change happened since the last publish (one small read)."""
        with self._sessions() as session:
            seq = _audit_seq(session)
            session.rollback()
        with self._lock:
            return seq != self._audit_seq

    def authenticate(self, token: str) -> ApiToken | None:
        from vpnreg.registry.services.tokens import authenticate_token

        with self._sessions() as session:
            return authenticate_token(session, token=token, now=self._clock.now())


def _audit_seq(session: Session) -> int | None:
    return session.execute(select(AuditHead.seq).where(AuditHead.id == 1)).scalar_one_or_none()
