"""Idempotency keys on creating an application.

A client that did not hear the answer to a create (a timeout, a 503 while the database
restarted, a dropped connection) cannot know whether the application was made. Sent again with
the same `Idempotency-Key`, the request returns the application the first attempt made, never a
second one; the same key with a different body is refused (422). Keys are per caller and are
remembered for KEY_LIFETIME, after which the key may be used afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import IdempotencyKey

#: Printable ASCII without spaces, as the IETF draft's examples and common clients send them.
KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
KEY_LIFETIME = dt.timedelta(hours=24)
_KEY = re.compile(KEY_PATTERN)


def request_fingerprint(request: Mapping[str, object]) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise ValidationFailed(
            [
                FieldError(
                    "Idempotency-Key",
                    "invalid",
                    "an idempotency key is 1 to 128 printable ASCII characters without spaces",
                    key[:60],
                )
            ]
        )


def remembered(
    session: Session, *, owner: str, key: str, fingerprint: str, now: dt.datetime
) -> int | None:
    """The id of the application this caller's `key` made, or None when the key is new (or
    expired, and then forgotten). Call inside the create's unit of work."""
    row = session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    )
    if row is None:
        return None
    if row.created_at <= now - KEY_LIFETIME:
        session.delete(row)
        session.flush()
        return None
    if row.request_hash != fingerprint:
        raise ValidationFailed(
            [
                FieldError(
                    "Idempotency-Key",
                    "reused",
                    "this idempotency key was already used for a different request",
                    key[:60],
                )
            ]
        )
    return row.application_id


def remember(
    session: Session,
    *,
    owner: str,
    key: str,
    fingerprint: str,
    application_id: int,
    now: dt.datetime,
) -> None:
    session.add(
        IdempotencyKey(
            owner=owner,
            key=key,
            request_hash=fingerprint,
            application_id=application_id,
            created_at=now,
        )
    )
    # Flushed now: a racing request with the same key waits here (PostgreSQL's unique index)
    # and fails once this one commits; the caller then reads what this one made.
    session.flush()
