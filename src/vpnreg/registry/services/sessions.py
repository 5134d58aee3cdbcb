"""Server-side web sessions and the record of failed sign-ins used to throttle guessing.

The browser's cookie holds a random token; only its SHA-256 is stored, so a copy of the database
does not let anyone sign in. Failed sign-ins are counted per username and client address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from vpnreg.registry.models import LoginFailure, WebSession
from vpnreg.registry.services.actors import Person
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import UserView

#: How long a sign-in lasts, whatever the activity (absolute, not sliding).
SESSION_LIFETIME = dt.timedelta(hours=12)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_web_session(
    session: Session,
    *,
    user: Person,
    now: dt.datetime,
    lifetime: dt.timedelta = SESSION_LIFETIME,
) -> tuple[WebSession, str]:
    """A new session for `user`; returns the row and the token for the cookie (shown once)."""
    token = secrets.token_urlsafe(32)
    with service_transaction(session):
        row = WebSession(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
        session.add(row)
        # Old expired sessions of anyone go at each sign-in, so the table stays small.
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return row, token


def resolve_web_session(session: Session, *, token: str, now: dt.datetime) -> UserView | None:
    """The active user signed in with `token`, or None (unknown, expired, or user disabled)."""
    if not token:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == token_hash(token)))
    if row is None or row.expires_at <= now or not row.user.active:
        return None
    return UserView.of(row.user)


def end_web_session(session: Session, *, token: str) -> bool:
    """Sign out: the session with `token` is deleted. True if there was one."""
    with service_transaction(session):
        result = session.execute(
            delete(WebSession).where(WebSession.token_hash == token_hash(token))
        )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class Throttle:
    """Whether sign-in is refused for a username+address, and for how many seconds more."""

    blocked: bool
    retry_after: int = 0


def login_throttle(
    session: Session,
    *,
    username: str,
    address: str,
    now: dt.datetime,
    limit: int = 5,
    window: dt.timedelta = dt.timedelta(minutes=15),
) -> Throttle:
    """Blocked while `limit` or more failures fall within the last `window`."""
    since = now - window
    query = select(func.count(), func.min(LoginFailure.failed_at)).where(
        LoginFailure.username == username,
        LoginFailure.address == address,
        LoginFailure.failed_at > since,
    )
    count, oldest = session.execute(query).one()
    return throttle_from(count=count, oldest=oldest, limit=limit, window=window, now=now)


def throttle_from(
    *, count: int, oldest: dt.datetime | None, limit: int, window: dt.timedelta, now: dt.datetime
) -> Throttle:
    """Blocked when `count` events (the oldest at `oldest`) within `window` reach `limit`;
    free again when the oldest leaves the window."""
    if count < limit or oldest is None:
        return Throttle(blocked=False)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    wait = (oldest + window - now).total_seconds()
    return Throttle(blocked=True, retry_after=max(1, int(wait) + (wait % 1 > 0)))


def record_login_failure(
    session: Session, *, username: str, address: str, now: dt.datetime
) -> None:
    with service_transaction(session):
        session.add(LoginFailure(username=username[:100], address=address[:64], failed_at=now))


def clear_login_failures(session: Session, *, username: str, address: str) -> None:
    with service_transaction(session):
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.username == username, LoginFailure.address == address
            )
        )
