"""The feed's mode changes as announcements (ADR 0012): record each one, list them, find due trials.

`services.set_mode` calls `check_change` before it changes anything and `record_change` in the
same transaction as its "feed.mode" audit event, so a change is announced exactly when it is
signed. A change ends when a later change replaces it (the same protocol, or the national
switch, which replaces every override) or, for a trial, at its planned end, when
vpnreg.registry.services.mode_trials reverts it from the publish path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.feed import EnforcementMode, Mode, VpnProtocol
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import ModeChange
from vpnreg.registry.services.actors import Actor

__all__ = [
    "MAX_REASON",
    "PLANNED_END",
    "ModeChangePublic",
    "check_change",
    "due_trials",
    "list_changes",
    "record_change",
    "trial_due",
]

#: Longest reason a change may give (it is shown publicly as given).
MAX_REASON = 500
#: `ended_by` of a trial reverted at its planned end.
PLANNED_END = "planned end"
#: Role shown for a change made by the registry itself or a trusted in-process actor.
SYSTEM_ROLE = "system"


def check_change(*, reason: str, until: dt.datetime | None, now: dt.datetime) -> str:
    """The reason, stripped; ValidationFailed when it is empty or too long, or when the planned
    end is naive or not after `now`."""
    problems: list[FieldError] = []
    text = reason.strip()
    if not text:
        problems.append(FieldError("reason", "required", "a mode change needs a reason", reason))
    elif len(text) > MAX_REASON:
        problems.append(
            FieldError("reason", "too_long", f"reason is longer than {MAX_REASON} characters")
        )
    if until is not None:
        if until.tzinfo is None:
            problems.append(
                FieldError("until", "invalid", "until needs a time zone offset", until.isoformat())
            )
        elif until <= now:
            problems.append(
                FieldError("until", "invalid", "until must be in the future", until.isoformat())
            )
    if problems:
        raise ValidationFailed(problems)
    return text


def _role(actor: Actor) -> str:
    # a string actor is the system or a trusted CLI task: its role, never a person's name
    return SYSTEM_ROLE if isinstance(actor, str) else str(actor.role)


def record_change(
    session: Session,
    *,
    protocol: VpnProtocol | None,
    before: EnforcementMode,
    after: EnforcementMode,
    reason: str,
    until: dt.datetime | None,
    actor: Actor,
    serial: int,
    now: dt.datetime,
) -> ModeChange:
    """Announce one change (in the caller's transaction) and end the changes it replaces."""
    replaced = select(ModeChange).where(ModeChange.ended_at.is_(None))
    if protocol is not None:
        replaced = replaced.where(ModeChange.protocol == str(protocol))
    old = session.scalars(replaced.with_for_update()).all()
    row = ModeChange(
        protocol=None if protocol is None else str(protocol),
        from_mode=str(before.default if protocol is None else before.effective(protocol)),
        to_mode=str(after.default if protocol is None else after.effective(protocol)),
        before=before.to_json(),
        reason=reason,
        actor_role=_role(actor),
        started_at=now,
        serial=serial,
        planned_end=until,
    )
    session.add(row)
    session.flush()
    for change in old:
        change.ended_at = now
        change.ended_by = f"replaced by change {row.id}"
    return row


def trial_due(session: Session, now: dt.datetime) -> bool:
    """Whether a trial reached its planned end and still applies (one indexed row; no lock)."""
    found = session.execute(
        select(ModeChange.id)
        .where(ModeChange.ended_at.is_(None), ModeChange.planned_end <= now)
        .limit(1)
    ).first()
    return found is not None


def due_trials(session: Session, now: dt.datetime) -> list[ModeChange]:
    """The trials to revert at `now`, oldest first, locked for the caller's transaction."""
    return list(
        session.scalars(
            select(ModeChange)
            .where(ModeChange.ended_at.is_(None), ModeChange.planned_end <= now)
            .order_by(ModeChange.id)
            .with_for_update()
        ).all()
    )


@dataclass(frozen=True)
class ModeChangePublic:
    """One announced change as the public page shows it."""

    id: int
    #: None: every protocol (the national switch).
    protocol: str | None
    from_mode: Mode
    to_mode: Mode
    reason: str
    actor_role: str
    started_at: dt.datetime
    serial: int
    planned_end: dt.datetime | None
    ended_at: dt.datetime | None
    ended_by: str | None

    @property
    def is_trial(self) -> bool:
        return self.planned_end is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "protocol": self.protocol,
            "scope": self.protocol or "all protocols",
            "from": str(self.from_mode),
            "to": str(self.to_mode),
            "reason": self.reason,
            "actor_role": self.actor_role,
            "start": _iso(self.started_at),
            "planned_end": None if self.planned_end is None else _iso(self.planned_end),
            "ended_at": None if self.ended_at is None else _iso(self.ended_at),
            "ended_by": self.ended_by,
            "serial": self.serial,
            "trial": self.is_trial,
        }


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_changes(session: Session, *, limit: int = 500) -> list[ModeChangePublic]:
    """Every announced change, newest first (at most `limit`)."""
    rows = session.scalars(select(ModeChange).order_by(ModeChange.id.desc()).limit(limit)).all()
    return [
        ModeChangePublic(
            id=r.id,
            protocol=r.protocol,
            from_mode=Mode(r.from_mode),
            to_mode=Mode(r.to_mode),
            reason=r.reason,
            actor_role=r.actor_role,
            started_at=r.started_at,
            serial=r.serial,
            planned_end=r.planned_end,
            ended_at=r.ended_at,
            ended_by=r.ended_by,
        )
        for r in rows
    ]
