"""What a reviewer sees beside the decision buttons, and an applicant on the check-your-answers
page: is each prefix valid under today's policy, and exactly which registrations or claims still
in review overlap it (larger ones covering it, equal ones, and smaller ones strictly inside it),
from registry.services.queries.overlapping_claims. Another application is named only to a viewer
who may see it; an overlap with registered space blocks submission (the rule of
registry.services.submission, which take_step applies).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vpnreg.core.ipspace import PrefixError, validate_prefix
from vpnreg.registry.services import ServiceConfig
from vpnreg.registry.services.queries import Overlap, overlapping_claims
from vpnreg.registry.services.submission import may_see, registered_overlap_text
from vpnreg.registry.services.unit_of_work import DbSession
from vpnreg.registry.views import ApplicationView, UserView

#: How an overlapping prefix relates to the one under review, as a reviewer reads it.
RELATIONS = {
    "same": "is also claimed as",
    "inside": "contains",
    "covers": "lies inside",
}


@dataclass(frozen=True)
class Finding:
    """One thing found about one prefix; `blocks` if it stops the application being submitted."""

    prefix: str
    ok: bool
    text: str
    blocks: bool = False


def overlap_text(overlap: Overlap, *, named: bool = True) -> str:
    kind = "registered" if overlap.registered else "in review"
    tracking = (
        (overlap.tracking_number or f"application {overlap.application_id}")
        if named
        else "another organisation's application"
    )
    verb = RELATIONS.get(overlap.relation, "overlaps")
    return (
        f"{verb} {overlap.other_prefix} of {tracking} ({kind}, {overlap.state.replace('_', ' ')})"
    )


def prefix_findings(
    session: DbSession,
    app: ApplicationView,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    viewer: UserView,
) -> list[Finding]:
    """Per prefix: one validation finding, then one finding per overlapping registration or
    pending claim of another application (or one saying there is none)."""
    findings: list[Finding] = []
    valid: list[str] = []
    for row in app.prefixes:
        try:
            validate_prefix(row.prefix, config.prefix_policy)
        except PrefixError as exc:
            findings.append(Finding(row.prefix, False, f"invalid: {exc.message}"))
            continue
        findings.append(Finding(row.prefix, True, "valid public prefix"))
        valid.append(row.prefix)
    overlaps = overlapping_claims(
        session, prefix_texts=valid, now=now, exclude_application_id=app.id
    )
    for prefix in valid:
        hits = overlaps.get(prefix, [])
        for hit in hits:
            named = may_see(session, viewer, hit.application_id)
            if hit.registered and app.renews_id != hit.application_id and app.state == "draft":
                text = registered_overlap_text(hit, named=named, lead=False)
                findings.append(Finding(prefix, False, text, blocks=True))
            else:
                findings.append(Finding(prefix, False, overlap_text(hit, named=named)))
        if not hits:
            findings.append(
                Finding(prefix, True, "no overlap with registered space or claims in review")
            )
    # Keep each prefix's findings together, in the application's order.
    order = {row.prefix: i for i, row in enumerate(app.prefixes)}
    return sorted(findings, key=lambda f: order.get(f.prefix, 0))
