"""The rule checked when an application is submitted: none of its prefixes may overlap space
that is registered (approved, active or expiring, or suspended: a suspended registration keeps
its space while its ISP may attest again) to another application.

Such an application could only be refused by the regulator at the end, after the ISP and the
sector body had done their work, so it is refused at the door instead (HTTP 409), naming the
registration when the submitter may see it. Claims still in review do not block: the first to
be approved wins, and the regulator sees the overlap among the findings.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.registry.errors import OverlapConflict
from vpnreg.registry.models import Application
from vpnreg.registry.services.actors import Person
from vpnreg.registry.services.queries import Overlap, overlapping_claims, visibility
from vpnreg.registry.views import ApplicationView


def may_see(session: Session, viewer: Person | None, application_id: int) -> bool:
    """Whether `viewer` may see application `application_id` (queries.visibility)."""
    found = session.scalar(
        select(Application.id).where(Application.id == application_id, visibility(viewer))
    )
    return found is not None


def registered_overlap_text(overlap: Overlap, *, named: bool, lead: bool = True) -> str:
    """Why `overlap` blocks a submission, naming the registration only if `named`; `lead`
    False leaves out the asked prefix (a page that shows it beside the text)."""
    whose = (
        f"registration {overlap.tracking_number}"
        if named and overlap.tracking_number
        else "another organisation's registration"
    )
    text = (
        f"overlaps {overlap.other_prefix}, which is already registered ({whose}); "
        "registered space cannot be applied for again"
    )
    return f"{overlap.prefix} {text}" if lead else text


def registered_overlaps(
    session: Session, app: Application | ApplicationView, *, now: dt.datetime
) -> list[Overlap]:
    """Every registration overlapping one of `app`'s prefixes, in the prefixes' order."""
    found = overlapping_claims(
        session,
        prefix_texts=[p.prefix for p in app.prefixes],
        now=now,
        exclude_application_id=app.id,
    )
    renewed = app.renews_id
    return [
        hit
        for p in app.prefixes
        for hit in found.get(p.prefix, [])
        # A renewal continues its own registration; that one is no obstacle.
        if hit.registered and hit.application_id != renewed
    ]


def refuse_registered_overlap(
    session: Session, app: Application, *, viewer: Person, now: dt.datetime
) -> None:
    """OverlapConflict (409) for the first registration overlapping `app`, if any."""
    for hit in registered_overlaps(session, app, now=now):
        named = may_see(session, viewer, hit.application_id)
        raise OverlapConflict(
            hit.prefix,
            hit.tracking_number if named and hit.tracking_number else "",
            hit.other_prefix,
            message=registered_overlap_text(hit, named=named),
        )
