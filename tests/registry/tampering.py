"""Tampering as someone with write access to the database would: triggers dropped, an event
changed and every later hash recomputed (ADR 0003's known limit; ADR 0008 closes it)."""

from __future__ import annotations

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from vpnreg.core.audit import record_hash
from vpnreg.registry.audit_log import iter_records
from vpnreg.registry.models import AuditHead, AuditLogRow


def drop_triggers(session: Session, table: str) -> None:
    """Drop the append-only triggers of `table` (audit_log, audit_checkpoints), if still there."""
    postgres = session.get_bind().dialect.name == "postgresql"
    for name in (f"{table}_no_update", f"{table}_no_delete"):
        session.execute(
            text(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
        )


def rewrite_from(session: Session, seq: int, after: dict[str, object]) -> None:
    """Change event `seq`'s `after` and recompute every later hash with each event's own salt,
    as an administrator with the database (and no scruples) could."""
    records = list(iter_records(session))
    previous = records[seq - 2].hash
    for record in records[seq - 1 :]:
        new_after = after if record.seq == seq else record.after
        digest = record_hash(
            seq=record.seq,
            time=record.time,
            actor=record.actor,
            action=record.action,
            object_type=record.object_type,
            object_id=record.object_id,
            before=record.before,
            after=new_after,  # type: ignore[arg-type]
            prev_hash=previous,
            version=record.version,
            salt=record.salt,
        )
        session.execute(
            update(AuditLogRow)
            .where(AuditLogRow.seq == record.seq)
            .values(after=new_after, prev_hash=previous, hash=digest)
        )
        previous = digest
    session.execute(update(AuditHead).values(hash=previous))
