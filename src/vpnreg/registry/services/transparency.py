"""Audit transparency (ADR 0008): signed checkpoints of the audit chain, and its public export.

`make_checkpoint` signs (count, head, time) with the feed's key, chained to the previous
checkpoint, under the audit head's row lock, so the count and head it signs are a state the
chain really had. `checkpoint_if_moved` is what the server runs every few minutes: nothing when
no event was appended since the last checkpoint. `export_lines` streams the public export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from vpnreg.core.audit import GENESIS_HASH
from vpnreg.core.audit_checkpoint import NO_PREVIOUS, Checkpoint, sign_checkpoint
from vpnreg.core.audit_export import export_line
from vpnreg.registry.audit_log import iter_records
from vpnreg.registry.errors import StateConflict
from vpnreg.registry.models import AuditCheckpoint, AuditHead
from vpnreg.registry.services.transaction import service_transaction

#: The most checkpoints one page of `list_checkpoints` holds.
MAX_CHECKPOINT_PAGE = 500


def _checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        number=row.number,
        count=row.count,
        head=row.head,
        time=row.time,
        previous=row.previous,
        key_id=row.key_id,
        signature=row.signature,
    )


def latest_checkpoint(session: Session) -> Checkpoint | None:
    row = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.number.desc()).limit(1))
    return None if row is None else _checkpoint(row)


def list_checkpoints(
    session: Session, *, before: int | None = None, limit: int = 100
) -> list[Checkpoint]:
    """Checkpoints newest first, those numbered below `before` when given (a page)."""
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.number.desc())
    if before is not None:
        query = query.where(AuditCheckpoint.number < before)
    rows = session.scalars(query.limit(max(1, min(limit, MAX_CHECKPOINT_PAGE))))
    return [_checkpoint(row) for row in rows]


def count_checkpoints(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0)


def _sign_next(
    session: Session, *, now: dt.datetime, private_key: Ed25519PrivateKey, only_if_moved: bool
) -> Checkpoint | None:
    with service_transaction(session):
        # The head's row lock: no event is appended while the count and head are read.
        head = session.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
        ).one()
        last = latest_checkpoint(session)
        head_hash = head.hash if head.seq > 0 else GENESIS_HASH
        if only_if_moved and last is not None and (last.count, last.head) == (head.seq, head_hash):
            return None
        if last is not None and now <= last.time:
            raise StateConflict(
                f"the clock ({now.isoformat()}) is not past the last checkpoint's time "
                f"({last.time.isoformat()}); checkpoint times must increase"
            )
        checkpoint = sign_checkpoint(
            number=1 if last is None else last.number + 1,
            count=head.seq,
            head=head_hash,
            time=now,
            previous=NO_PREVIOUS if last is None else last.digest,
            private_key=private_key,
        )
        session.execute(
            insert(AuditCheckpoint).values(
                number=checkpoint.number,
                count=checkpoint.count,
                head=checkpoint.head,
                time=checkpoint.time,
                previous=checkpoint.previous,
                key_id=checkpoint.key_id,
                signature=checkpoint.signature,
            )
        )
    return checkpoint


def make_checkpoint(
    session: Session, *, now: dt.datetime, private_key: Ed25519PrivateKey
) -> Checkpoint:
    """Sign and store a checkpoint of the chain as it is now (`vpnreg audit checkpoint`)."""
    made = _sign_next(session, now=now, private_key=private_key, only_if_moved=False)
    assert made is not None
    return made


def checkpoint_if_moved(
    session: Session, *, now: dt.datetime, private_key: Ed25519PrivateKey
) -> Checkpoint | None:
    """A new checkpoint when events were appended since the last one (or none exists yet)."""
    return _sign_next(session, now=now, private_key=private_key, only_if_moved=True)


def export_lines(session: Session) -> Iterator[bytes]:
    """The public export, one JSON line per event in seq order (streamed in batches)."""
    for record in iter_records(session):
        yield export_line(record)
