"""The append-only audit log: writing events into the hash chain and verifying it.

Every change a service makes is recorded here in the same transaction as the change. The chain
head (table audit_head, one row) is read with SELECT ... FOR UPDATE, so on PostgreSQL concurrent
writers queue on that row lock; on SQLite the write unit's BEGIN IMMEDIATE already serialises
writers.

Events are appended with hash version 2 (ADR 0008) and a fresh random salt from os.urandom;
events stored before migration 0009 keep version 1, and verification checks both.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from sqlalchemy import Text, cast, insert, select, update
from sqlalchemy.orm import Session

from vpnreg.core.audit import (
    GENESIS_HASH,
    SALT_BYTES,
    AuditRecord,
    ChainProblem,
    next_record,
    verify_chain,
)
from vpnreg.registry.credential_changes import CREDENTIAL_OBJECTS, mark
from vpnreg.registry.feed_signals import notify_changed
from vpnreg.registry.models import AuditHead, AuditLogRow

#: Rows fetched per round trip when streaming the log for verification.
VERIFY_BATCH = 2000


#: The snapshots are read as the text stored, not through the JSON type: a row whose JSON was
#: tampered into something unparseable must be reported as that event's tampering, not crash
#: the verification (SQLite stores JSON as plain text; PostgreSQL refuses invalid JSON).
_COLUMNS = (
    AuditLogRow.seq,
    AuditLogRow.time,
    AuditLogRow.actor,
    AuditLogRow.action,
    AuditLogRow.object_type,
    AuditLogRow.object_id,
    cast(AuditLogRow.before, Text).label("before"),
    cast(AuditLogRow.after, Text).label("after"),
    AuditLogRow.prev_hash,
    AuditLogRow.hash,
    AuditLogRow.hash_version.label("version"),
    AuditLogRow.salt,
)


class UnreadableJSON:
    """A stored snapshot that is not valid JSON. canonical_json refuses it, so the chain check
    reports the event as malformed."""

    def __init__(self, stored: str) -> None:
        self.excerpt = stored[:40]

    def __repr__(self) -> str:
        return f"UnreadableJSON({self.excerpt!r})"


def _decoded(stored: str | None) -> object:
    if stored is None:
        return None
    try:
        return json.loads(stored)
    except (ValueError, RecursionError):
        return UnreadableJSON(stored)


def _to_record(row: AuditLogRow) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        time=row.time,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        before=row.before,
        after=row.after,
        prev_hash=row.prev_hash,
        hash=row.hash,
        version=row.hash_version,
        salt=_bytes(row.salt),
    )


def _bytes(stored: bytes | memoryview | None) -> bytes | None:
    # psycopg may hand bytea back as a memoryview; the hash needs bytes.
    return None if stored is None else bytes(stored)


class AuditChain:
    """Appends events after the current head; `write()` stores them and moves the head.

    Creating it locks the head row until the transaction ends, so take it as late as possible
    in a service and commit soon after. Events are kept in memory and inserted in one batch.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        head = session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one()
        self._head = head
        self._prev: AuditRecord | None = None
        if head.seq > 0:
            last = session.get(AuditLogRow, head.seq)
            if last is None:
                raise RuntimeError(f"audit head names event {head.seq}, which is missing")
            self._prev = _to_record(last)
        self._pending: list[AuditRecord] = []

    @property
    def last(self) -> AuditRecord | None:
        return self._prev

    def append(
        self,
        *,
        time: dt.datetime,
        actor: str,
        action: str,
        object_type: str,
        object_id: str | int,
        before: Any,
        after: Any,
    ) -> AuditRecord:
        record = next_record(
            self._prev,
            time=time,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
            salt=os.urandom(SALT_BYTES),
        )
        self._pending.append(record)
        self._prev = record
        return record

    def write(self) -> None:
        """Insert the pending events and move the head; nothing happens when none are pending."""
        if not self._pending:
            return
        self._session.execute(
            insert(AuditLogRow),
            [
                {
                    "seq": r.seq,
                    "time": r.time,
                    "actor": r.actor,
                    "action": r.action,
                    "object_type": r.object_type,
                    "object_id": r.object_id,
                    "before": r.before,
                    "after": r.after,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                    "hash_version": r.version,
                    "salt": r.salt,
                }
                for r in self._pending
            ],
        )
        last = self._pending[-1]
        if any(r.object_type in CREDENTIAL_OBJECTS for r in self._pending):
            # a token or a user changed: caches of checked tokens must forget (at commit)
            mark(self._session)
        self._session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(seq=last.seq, hash=last.hash)
            .execution_options(synchronize_session=False)
        )
        self._session.expire(self._head)
        self._pending.clear()
        # Every audited change may move the feed: wake its publisher, in whichever process it
        # runs, when this transaction commits (PostgreSQL; ADR 0016).
        notify_changed(self._session)


class DeferredEvents:
    """A transaction's events kept until `write`, which takes the audit head's row lock only
    then. Every audited write in the registry queues on that lock, so a service that records
    several steps (an approval that activates at once, a time sweep) or does more work after a
    step (the outbox) appends here and writes last, just before it commits: the lock is held for
    the insert and the commit, not for the service's whole transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._events: list[dict[str, Any]] = []

    def append(
        self,
        *,
        time: dt.datetime,
        actor: str,
        action: str,
        object_type: str,
        object_id: str | int,
        before: Any = None,
        after: Any = None,
    ) -> None:
        self._events.append(
            {
                "time": time,
                "actor": actor,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "before": before,
                "after": after,
            }
        )

    def write(self) -> list[AuditRecord]:
        """Chain and store the kept events, in the order appended (none kept: no lock)."""
        if not self._events:
            return []
        chain = AuditChain(self._session)
        records = [chain.append(**fields) for fields in self._events]
        chain.write()
        self._events.clear()
        return records


def append_event(
    session: Session,
    *,
    time: dt.datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    before: Any = None,
    after: Any = None,
) -> AuditRecord:
    """Record one event in the caller's transaction (which the caller commits), at once."""
    events = DeferredEvents(session)
    events.append(
        time=time,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
    )
    return events.write()[0]


class _Identified(Protocol):
    @property
    def id(self) -> int: ...


_Row = TypeVar("_Row", bound=_Identified)


def add_audited(
    session: Session,
    row: _Row,
    *,
    time: dt.datetime,
    actor: str,
    action: str,
    object_type: str,
    snapshot: Callable[[_Row], Any],
) -> _Row:
    """Insert `row` and record its creation (`after` = its snapshot, taken once the insert gave
    it an id) in the caller's transaction."""
    session.add(row)
    session.flush()
    append_event(
        session,
        time=time,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=row.id,
        after=snapshot(row),
    )
    return row


def iter_records(session: Session, *, batch: int = VERIFY_BATCH) -> Iterator[AuditRecord]:
    """Every stored event in seq order, fetched in batches (the whole log never sits in memory)."""
    last_seq = -1
    while True:
        # Plain column rows, not ORM objects: nothing piles up in the session's identity map.
        rows = session.execute(
            select(*_COLUMNS)
            .where(AuditLogRow.seq > last_seq)
            .order_by(AuditLogRow.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            fields = row._asdict()
            fields["before"] = _decoded(fields["before"])
            fields["after"] = _decoded(fields["after"])
            fields["salt"] = _bytes(fields["salt"])
            yield AuditRecord(**fields)
        last_seq = rows[-1].seq


def verify_audit(session: Session) -> ChainProblem | None:
    """The first problem in the stored chain, or None when it is intact.

    Besides the links between rows (verify_chain), the head must name the last row, so that
    deleting the newest events is noticed too.
    """
    last: AuditRecord | None = None
    unreadable: dict[int, str] = {}

    def tracked() -> Iterator[AuditRecord]:
        nonlocal last
        for record in iter_records(session):
            last = record
            for field in ("before", "after"):
                value = getattr(record, field)
                if isinstance(value, UnreadableJSON):
                    unreadable.setdefault(
                        record.seq, f"its stored {field} is not JSON ({value.excerpt!r}...)"
                    )
            yield record

    problem = verify_chain(tracked())
    if problem is not None and problem.kind == "malformed" and problem.seq in unreadable:
        return ChainProblem(
            problem.seq,
            "malformed",
            f"event {problem.seq} was tampered with: {unreadable[problem.seq]}",
        )
    if problem is not None:
        return problem
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    last_seq = last.seq if last is not None else 0
    last_hash = last.hash if last is not None else ""
    if (head.seq, head.hash) != (last_seq, last_hash):
        return ChainProblem(
            seq=last_seq + 1 if head.seq > last_seq else last_seq,
            kind="head_mismatch",
            message=(
                f"the chain head names event {head.seq} but the log ends at event {last_seq}"
                if head.seq != last_seq
                else f"the chain head hash differs from the hash of event {last_seq}"
            ),
        )
    return None


__all__ = ["GENESIS_HASH", "AuditChain", "append_event", "iter_records", "verify_audit"]
