"""Words the portal says about a decision: what was decided on which application, and the
validity rule where the applicant sees it.

Every banner is built from the application as stored (its tracking number, state and dates) and
a step name checked against a fixed table, never from text in the link, so a crafted link cannot
put words in the registry's mouth.
"""

from __future__ import annotations

from vpnreg.core.review import EXPIRING_NOTICE_DAYS, PROVISIONAL_DAYS, RENEWAL_DAYS, State
from vpnreg.registry.views import ApplicationView

#: What each step did, as the sentence after "Application VPN-…".
DONE_WORDS = {
    "submit": "submitted; your ISP will verify it next",
    "verify": "verified",
    "endorse": "endorsed",
    "approve": "approved",
    "reject": "rejected",
    "revoke": "revoked",
    "withdraw": "withdrawn",
    "appeal": "appealed; a regulator other than the one who rejected it will decide",
    "uphold": "rejection upheld",
    "overturn": "rejection overturned",
    "renew": "renewal submitted; your ISP will verify it next",
    "withdraw_attestation": "suspended: attestation withdrawn, off the allowlist",
    "reattest": "re-attested and in force again",
}

#: What each step did, short, for one row of a bulk result ("VPN-…: verified").
RESULT_WORDS = {
    "verify": "verified",
    "endorse": "endorsed",
    "approve": "approved",
    "reject": "rejected",
    "revoke": "revoked",
    "uphold": "rejection upheld",
    "overturn": "rejection overturned",
    "withdraw_attestation": "suspended",
    "reattest": "re-attested",
}


def validity_text(app: ApplicationView) -> str:
    """ ", valid until <date>" (or where it resumes) when the step left the application dated."""
    if app.valid_until is None or app.state not in (
        State.APPROVED,
        State.ACTIVE,
        State.EXPIRING,
    ):
        return ""
    return f"; valid until {app.valid_until.isoformat()} (end of day)"


def decision_banner(app: ApplicationView, step: str) -> str | None:
    """ "Application VPN-2026-7KQ3-M9XD approved; valid until 2026-04-15 (end of day)." or None
    for a step the table does not know."""
    words = DONE_WORDS.get(step)
    if words is None:
        return None
    return f"Application {app.tracking_number} {words}{validity_text(app)}."


def result_line(step: str, ok: bool, app: ApplicationView, error: str = "") -> str:
    """One row of a bulk result: the outcome in words, or why it was not done."""
    if not ok:
        return error
    return RESULT_WORDS.get(step, step) + validity_text(app)


def validity_rule(app: ApplicationView) -> str | None:
    """How long this registration holds and why, for the applicant's page; None before a
    decision gives it dates."""
    if app.valid_until is None:
        return None
    if app.renews_id is None:
        return (
            f"A first registration is provisional: it holds for the rest of the day it was "
            f"approved and {PROVISIONAL_DAYS} more days. Before a full year is granted the "
            f"ISP (and, for your category, the sector body) confirm it again through a "
            f"renewal, which you can ask for once it is active. A renewal runs "
            f"{RENEWAL_DAYS} days from the end of the current registration, so there is no "
            f"gap. It shows as expiring in its last {EXPIRING_NOTICE_DAYS} days."
        )
    return (
        f"This renewal runs {RENEWAL_DAYS} days from the end of the registration it continues "
        f"(or from its approval, if that had already ended). Renew it again before it ends; "
        f"it shows as expiring in its last {EXPIRING_NOTICE_DAYS} days."
    )


#: The `done` values of the applicant's redirects, and the step each stands for.
APPLICANT_DONE = {
    "submitted": "submit",
    "withdrawn": "withdraw",
    "appealed": "appeal",
    "renewed": "renew",
}
