"""The sign-up throttle: attempts per client address within a window, in a table of their own.

Every attempt let through counts, whatever its outcome, and nothing else (a successful sign-in
included) resets the count. Attempts from one address are counted and written one at a time
(SQLite: the write unit's BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock keyed
by the address), so of any number sent at once exactly min(number, room left) go through: never
more than `limit`, and never none while there is room. An attempt turned away is not written,
so hammering does not extend the wait.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import delete, func, select, text
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
    kept = address[:64]
    with service_transaction(session):
        _one_at_a_time(session, kept)
        # Attempts older than any window go here, so the table stays small.
        session.execute(delete(SignupAttempt).where(SignupAttempt.attempted_at <= since))
        count, oldest = session.execute(
            select(func.count(), func.min(SignupAttempt.attempted_at)).where(
                SignupAttempt.address == kept, SignupAttempt.attempted_at > since
            )
        ).one()
        throttle = throttle_from(count=count, oldest=oldest, limit=limit, window=window, now=now)
        if not throttle.blocked:
            session.add(SignupAttempt(address=kept, attempted_at=now))
    return throttle


def _one_at_a_time(session: Session, address: str) -> None:
    """Serialise the attempts of one address on PostgreSQL (SQLite's write unit already does).

    Racing attempts once all wrote first and counted after: each then saw the others and all
    were turned away, none let through."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"signup:" + address.encode()).digest()[:8], "big")
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": key - 2**63 if key >= 2**63 else key},
        )
