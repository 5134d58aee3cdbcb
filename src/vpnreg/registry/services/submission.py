"""The rules checked when an application is submitted: none of its prefixes may overlap space
that is registered (approved, active or expiring, or suspended: a suspended registration keeps
its space while its ISP may attest again) to another application, and a subscriber (of one ISP)
has at most one subscriber-bound registration in force.

Such an application could only be refused by the regulator at the end, after the ISP and the
sector body had done their work, so it is refused at the door instead (HTTP 409), naming the
registration when the submitter may see it. Claims still in review do not block: the first to
be approved wins, and the regulator sees the overlap among the findings.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import State
from vpnreg.registry.errors import OverlapConflict
from vpnreg.registry.models import Application, BoundTo
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


#: States in which a registration holds (or is about to hold) its addresses.
#: A suspended registration counts: its ISP may attest again, and it then resumes as it was.
IN_FORCE = (
    State.APPROVED.value,
    State.ACTIVE.value,
    State.EXPIRING.value,
    State.SUSPENDED.value,
)


def refuse_second_subscriber_registration(
    session: Session, app: Application, *, viewer: Person | None
) -> None:
    """OverlapConflict (409) when `app` is subscriber-bound and another registration of the same
    ISP's same subscriber is in force (the one `app` renews excepted): the bindings of one
    subscriber can belong to one registration only. `viewer` None: name it (a regulator)."""
    if app.bound_to != BoundTo.SUBSCRIBER.value:
        return
    found = session.execute(
        select(Application.id, Application.tracking_number)
        .where(
            Application.isp_id == app.isp_id,
            Application.subscriber_id == app.subscriber_id,
            Application.bound_to == BoundTo.SUBSCRIBER.value,
            Application.state.in_(IN_FORCE),
            Application.id != app.id,
        )
        .order_by(Application.id)
    ).all()
    for other_id, tracking in found:
        if other_id == app.renews_id:
            continue
        named = viewer is None or may_see(session, viewer, other_id)
        whose = f"registration {tracking}" if named and tracking else "another registration"
        raise OverlapConflict(
            str(app.subscriber_id),
            tracking if named and tracking else "",
            str(app.subscriber_id),
            message=(
                f"subscriber {app.subscriber_id} of {app.isp.name} already has a registration "
                f"in force ({whose}); a subscriber holds one subscriber-bound registration"
            ),
        )
