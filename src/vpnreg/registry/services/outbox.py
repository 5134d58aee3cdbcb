"""Notification e-mails: rendered into the outbox table in the same transaction as the change.

Nothing here sends mail. A sender (outside the tests) would deliver rows whose sent_at is empty and
mark them; `vpnreg outbox` lists them. Users have no e-mail column yet, so a message is addressed
to the username and the sender resolves the address.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vpnreg.core.review import Role, State
from vpnreg.registry.models import Application, OutboxMessage, SectorBodyCategory, User

#: Who handles an application next, by the state it has just entered.
_NEXT_HANDLERS: dict[str, tuple[Role, ...]] = {
    State.SUBMITTED.value: (Role.ISP,),
    State.ISP_VERIFIED.value: (Role.SECTOR_BODY, Role.REGULATOR),
    State.SECTOR_ENDORSED.value: (Role.REGULATOR,),
    State.APPEALED.value: (Role.REGULATOR,),
}


#: What a step means for the applicant, where the bare states do not say it.
_EXPLANATIONS: dict[str, str] = {
    "withdraw_attestation": (
        "Your ISP has withdrawn its attestation that these addresses belong to your line. "
        "The registration is suspended: its addresses are off the allowlist from now on. It "
        "resumes, without a new review, if your ISP attests again; otherwise it ends at its "
        "end date or when the regulator revokes it."
    ),
    "reattest": (
        "Your ISP has attested again that these addresses belong to your line. The "
        "registration is in force again until its end date."
    ),
}


@dataclass(frozen=True)
class OutboxItem:
    """One outbox row as plain data."""

    id: int
    created_at: dt.datetime
    event: str
    application_id: int | None
    recipient: str
    subject: str
    body: str
    sent_at: dt.datetime | None


def _recipients(session: Session, app: Application, to_state: str) -> list[str]:
    wanted = [User.organisation_id == app.organisation_id]
    for role in _NEXT_HANDLERS.get(to_state, ()):
        if role is Role.ISP:
            wanted.append((User.role == Role.ISP.value) & (User.isp_id == app.isp_id))
        elif role is Role.SECTOR_BODY:
            covering = select(SectorBodyCategory.sector_body_id).where(
                SectorBodyCategory.category == app.category
            )
            wanted.append((User.role == Role.SECTOR_BODY.value) & User.sector_body_id.in_(covering))
        else:
            wanted.append(User.role == role.value)
    names = session.scalars(
        select(User.username).where(User.active.is_(True), or_(*wanted)).order_by(User.username)
    ).all()
    return list(dict.fromkeys(names))


def render_message(
    app: Application,
    *,
    action: str,
    from_state: str,
    to_state: str,
    actor: str,
    now: dt.datetime,
    reason: str | None,
) -> tuple[str, str]:
    """Subject and plain-text body of the notice of one step."""
    ref = app.tracking_number or f"application {app.id}"
    subject = f"[vpnreg] {ref}: {from_state} -> {to_state}"
    lines = [
        f"Application {ref} has changed state.",
        "",
        f"Step:      {action}",
        f"From:      {from_state}",
        f"To:        {to_state}",
        f"By:        {actor}",
        f"When:      {now.astimezone(dt.UTC).isoformat()}",
        f"Prefixes:  {', '.join(p.prefix for p in app.prefixes)}",
    ]
    if app.valid_until is not None:
        lines.append(f"Valid to:  {app.valid_until.isoformat()}")
    if action in _EXPLANATIONS:
        lines += ["", _EXPLANATIONS[action]]
    if reason:
        lines += ["", "Reason:", reason]
    lines += ["", "This is an automatic message of the VPN endpoint registry."]
    return subject, "\n".join(lines) + "\n"


def notify_state_change(
    session: Session,
    app: Application,
    *,
    action: str,
    from_state: str,
    to_state: str,
    actor: str,
    now: dt.datetime,
    reason: str | None = None,
) -> list[OutboxMessage]:
    """Queue one message per recipient in the caller's transaction (the caller commits)."""
    subject, body = render_message(
        app,
        action=action,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        now=now,
        reason=reason,
    )
    rows = [
        OutboxMessage(
            created_at=now,
            event=action,
            application_id=app.id,
            recipient=recipient,
            subject=subject,
            body=body,
        )
        for recipient in _recipients(session, app, to_state)
    ]
    session.add_all(rows)
    return rows


def list_outbox(
    session: Session,
    *,
    application_id: int | None = None,
    unsent_only: bool = False,
    limit: int = 100,
) -> list[OutboxItem]:
    """The newest outbox rows first."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if application_id is not None:
        query = query.where(OutboxMessage.application_id == application_id)
    if unsent_only:
        query = query.where(OutboxMessage.sent_at.is_(None))
    return [
        OutboxItem(
            id=row.id,
            created_at=row.created_at,
            event=row.event,
            application_id=row.application_id,
            recipient=row.recipient,
            subject=row.subject,
            body=row.body,
            sent_at=row.sent_at,
        )
        for row in session.scalars(query)
    ]
