"""The timeline of an application as the portal shows it: one labelled, dated step per review."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from vpnreg.core.review import State
from vpnreg.registry.services.queries import TimelineEntry, application_timeline
from vpnreg.registry.services.unit_of_work import DbSession
from vpnreg.registry.views import ApplicationView
from vpnreg.web.portal.pages import local_time

#: What each review action reads as on a status page.
LABELS = {
    "create": "Application created",
    "submit": "Submitted by the applicant",
    "verify": "Verified by the ISP",
    "endorse": "Endorsed by the sector body",
    "approve": "Approved by the regulator",
    "activate": "Registration active",
    "mark_expiring": "Expiring soon",
    "expire": "Expired",
    "reject": "Rejected",
    "appeal": "Appeal filed",
    "uphold": "Rejection upheld",
    "overturn": "Rejection overturned",
    "revoke": "Revoked by the regulator",
    "withdraw": "Withdrawn by the applicant",
    "withdraw_attestation": "Attestation withdrawn by the ISP",
    "reattest": "Re-attested by the ISP",
    "renew": "Renewal requested",
}


@dataclass(frozen=True)
class Step:
    label: str
    to_state: str
    at: dt.datetime
    at_local: str
    actor: str | None
    reason: str | None


def suspension_step(app: ApplicationView, steps: list[Step]) -> Step | None:
    """The step that suspended `app` (its ISP's withdrawal, with the reason), while it is
    suspended; None otherwise."""
    if app.state != State.SUSPENDED:
        return None
    return next((s for s in reversed(steps) if s.to_state == State.SUSPENDED), None)


def timeline_steps(session: DbSession, *, application_id: int, tz: dt.tzinfo) -> list[Step]:
    return steps_from(application_timeline(session, application_id=application_id), tz)


def steps_from(reviews: Iterable[TimelineEntry], tz: dt.tzinfo) -> list[Step]:
    return [
        Step(
            label=LABELS.get(r.action, r.action.replace("_", " ").capitalize()),
            to_state=r.to_state,
            at=r.at,
            at_local=local_time(r.at, tz),
            actor=r.actor,
            reason=r.reason,
        )
        for r in reviews
    ]
