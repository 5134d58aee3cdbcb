"""API tokens for machines: created once and shown once, stored only as a SHA-256, revocable.

A token is "vpnreg_" + 32 random bytes, URL-safe base64. Its SHA-256 (hex, of the whole text) is
what the table holds, so a leaked database does not leak usable tokens. A fast hash suffices:
the secret has 256 bits of entropy, unlike a password.

A token carries either a role of its own (a gateway reading the feed) or a user: a user-bound
token acts as that user, with the user's role and scope of the moment, and stops working when the
user is disabled or deleted. Any token may have an expiry, after which it is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import Role
from vpnreg.registry.audit_log import add_audited, append_event
from vpnreg.registry.errors import FieldError, NotFound, StateConflict, ValidationFailed
from vpnreg.registry.models import ApiToken, User
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import TokenView

__all__ = [
    "TOKEN_PREFIX",
    "authenticate_token",
    "create_token",
    "effective_role",
    "list_tokens",
    "revoke_token",
    "token_hash",
]

TOKEN_PREFIX = "vpnreg_"  # noqa: S105 - a label, not a secret
#: Roles a token may carry: people log in; "system" is the registry itself, never a caller.
TOKEN_ROLES = tuple(r for r in Role if r is not Role.SYSTEM)
#: last_used_at is written at most this often, so busy tokens do not write on every request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
_MAX_NAME = 100


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _token_snapshot(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "user_id": token.user_id,
        "expires_at": _iso(token.expires_at),
        "revoked_at": _iso(token.revoked_at),
    }


def effective_role(token: ApiToken | TokenView) -> str:
    """The role the token acts with: its user's current role when bound, else its own."""
    return token.user.role if token.user is not None else token.role


def _check(
    name: str,
    role: Role | str | None,
    user: User | None,
    expires_at: dt.datetime | None,
    now: dt.datetime,
) -> Role:
    problems: list[FieldError] = []
    clean = name.strip()
    if not clean or len(clean) > _MAX_NAME:
        problems.append(
            FieldError(
                "name", "bad_name", f"a token needs a name of 1 to {_MAX_NAME} characters", name
            )
        )
    wanted = role if user is None else user.role
    chosen = Role(wanted) if wanted in {r.value for r in Role} else None
    if user is not None and not user.active:
        problems.append(FieldError("user", "user_disabled", "the user is disabled", user.username))
    elif chosen is None or chosen not in TOKEN_ROLES:
        names = ", ".join(r.value for r in TOKEN_ROLES)
        problems.append(FieldError("role", "bad_role", f"role must be one of {names}", str(wanted)))
    if expires_at is not None and expires_at <= now:
        problems.append(
            FieldError(
                "expires_at", "in_the_past", "a token must expire after now", expires_at.isoformat()
            )
        )
    if problems or chosen is None:
        raise ValidationFailed(problems)
    return chosen


def create_token(
    session: Session,
    *,
    name: str,
    role: Role | str | None = None,
    user_id: int | None = None,
    expires_at: dt.datetime | None = None,
    actor: Actor,
    now: dt.datetime,
) -> tuple[ApiToken, str]:
    """A new token (admin only); returns the row and the token text, which is not kept.

    Exactly one of `role` (a machine's token) and `user_id` (a token acting as that user) is
    given; an unknown user is NotFound. `expires_at`, if given, must be after `now`.
    """
    require_role(actor, Role.ADMIN)
    if (role is None) == (user_id is None):
        raise ValidationFailed(
            [
                FieldError(
                    "role",
                    "role_or_user",
                    "a token has either a role or a user (it then takes the user's role)",
                )
            ]
        )
    user = None
    if user_id is not None:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("user", user_id)
    chosen = _check(name, role, user, expires_at, now)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with service_transaction(session):
        token = ApiToken(
            name=name.strip(),
            role=chosen.value,
            token_hash=token_hash(secret),
            user_id=user_id,
            user=user,
            created_at=now,
            created_by=actor_name(actor),
            last_used_at=None,
            expires_at=expires_at,
            revoked_at=None,
        )
        add_audited(
            session,
            token,
            time=now,
            actor=actor_name(actor),
            action="token.create",
            object_type="api_token",
            snapshot=_token_snapshot,
        )
    return token, secret


def _live(found: ApiToken, now: dt.datetime) -> bool:
    if found.revoked_at is not None:
        return False
    if found.expires_at is not None and found.expires_at <= now:
        return False
    # A bound token whose user is gone cannot happen (the row is deleted with the user), but it
    # must never fall back to its stored role: refuse it all the same.
    return found.user_id is None or (found.user is not None and found.user.active)


def authenticate_token(session: Session, *, token: str, now: dt.datetime) -> TokenView | None:
    """The live token `token` names, or None when it is unknown, revoked, expired, or bound to a
    disabled user. A bound token's `user` comes with it: the caller acts as that user.

    A plain read: only when `last_used_at` is due for an update (LAST_USED_RESOLUTION) does it
    take a write unit, so a busy machine's every request does not queue for SQLite's lock."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    wanted = token_hash(token)
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == wanted))
    # The lookup is by hash, so its timing says nothing about the secret; compare anyway.
    if found is None or not hmac.compare_digest(found.token_hash, wanted) or not _live(found, now):
        return None
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
        with service_transaction(session):
            found = session.get(ApiToken, found.id, populate_existing=True)
            if found is None or not _live(found, now):
                return None
            found.last_used_at = now
    return TokenView.of(found)


def revoke_token(session: Session, *, token_id: int, actor: Actor, now: dt.datetime) -> ApiToken:
    """Revoke a token (admin only); it stops working at once. Revoking twice is a conflict."""
    require_role(actor, Role.ADMIN)
    with service_transaction(session):
        token = session.get(ApiToken, token_id)
        if token is None:
            raise NotFound("API token", token_id)
        if token.revoked_at is not None:
            raise StateConflict(f"API token {token_id} ({token.name}) is already revoked")
        before = _token_snapshot(token)
        token.revoked_at = now
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="token.revoke",
            object_type="api_token",
            object_id=token.id,
            before=before,
            after=_token_snapshot(token),
        )
    return token


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query).all())
