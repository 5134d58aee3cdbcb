"""The sign-up throttle: attempts per client address within a window, in a table of their own.

Every attempt counts, whatever its outcome, and nothing else (a successful sign-in included)
resets the count. The attempt is written and committed before it is counted, so requests
racing from one address cannot all see room: of any number sent at once, at most `limit` go
through. An attempt turned away is taken back out, so hammering does not extend the wait.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from vpnreg.registry.models import SignupAttempt
from vpnreg.registry.services.sessions import Throttle, throttle_from
from vpnreg.registry.services.transaction import service_transaction

#: The window the limit applies to.
SIGNUP_WINDOW = dt.timedelta(hours=1)


def admit_signup(
    session: Session,
    *,
    address: str,
    now: dt.datetime,
    limit: int,
    window: dt.timedelta = SIGNUP_WINDOW,
) -> Throttle:
    """Count a sign-up attempt from `address`: not blocked while it is one of the first `limit`
    within `window` (it then stays counted); blocked otherwise, with the seconds to wait."""
    since = now - window
    with service_transaction(session):
        attempt = SignupAttempt(address=address[:64], attempted_at=now)
        session.add(attempt)
        # Attempts older than any window go here, so the table stays small.
        session.execute(delete(SignupAttempt).where(SignupAttempt.attempted_at <= since))
    query = select(func.count(), func.min(SignupAttempt.attempted_at)).where(
        SignupAttempt.address == address[:64], SignupAttempt.attempted_at > since
    )
    count, oldest = session.execute(query).one()
    # `count` includes this attempt: it may go through while the count is within the limit.
    throttle = throttle_from(count=count - 1, oldest=oldest, limit=limit, window=window, now=now)
    if throttle.blocked:
        with service_transaction(session):
            session.execute(delete(SignupAttempt).where(SignupAttempt.id == attempt.id))
    return throttle
