"""Address-space claims of approved registrations, and the overlap rule they enforce.

Addresses are compared as 32-hex-digit strings (IPv4 mapped into ::ffff:0:0/96), which sort like
the numbers they stand for, so one indexed range query finds overlaps on both backends. On
PostgreSQL an exclusion constraint on the claims table is the final word; on SQLite the same
query runs inside the BEGIN IMMEDIATE transaction that serialises writers.

A suspended registration (its ISP withdrew the attestation) keeps its claims: it is off the
allowlist, but its ISP may attest again and restore it without a new review, which must not find
the space taken meanwhile. So nobody else can be approved for that space while it is suspended;
the claims go only when it is revoked or expires (the regulator revokes one that will not come
back, which frees the space at once).
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vpnreg.core.ipspace import Address, Network
from vpnreg.core.review import validity_end
from vpnreg.registry.errors import OverlapConflict, StateConflict
from vpnreg.registry.models import Application, Claim

_V4_MAPPED = int(ipaddress.IPv6Address("::ffff:0:0"))


def address_key(address: Address) -> str:
    """The address as 32 hex digits; IPv4 is mapped so both families share one ordering."""
    value = int(address)
    if address.version == 4:
        value += _V4_MAPPED
    return f"{value:032x}"


def range_keys(network: Network) -> tuple[str, str]:
    """(first, last) address of `network` as 32-hex-digit keys."""
    first = int(network.network_address)
    last = first | ((1 << (network.max_prefixlen - network.prefixlen)) - 1)
    if network.version == 4:
        first += _V4_MAPPED
        last += _V4_MAPPED
    return f"{first:032x}", f"{last:032x}"


def _conflicts(
    session: Session,
    *,
    range_start: str,
    range_end: str,
    valid_from: dt.datetime,
    valid_end: dt.datetime,
    exclude_application_id: int,
) -> list[tuple[Claim, str | None]]:
    query = (
        select(Claim, Application.tracking_number)
        .join(Application, Application.id == Claim.application_id)
        .where(
            Claim.range_start <= range_end,
            Claim.range_end >= range_start,
            Claim.valid_from < valid_end,
            Claim.valid_end > valid_from,
            Claim.application_id != exclude_application_id,
        )
        .order_by(Claim.id)
    )
    return [(claim, tracking) for claim, tracking in session.execute(query).all()]


def _raise_first_conflict(session: Session, application: Application, claims: list[Claim]) -> None:
    for claim in claims:
        found = _conflicts(
            session,
            range_start=claim.range_start,
            range_end=claim.range_end,
            valid_from=claim.valid_from,
            valid_end=claim.valid_end,
            exclude_application_id=application.id,
        )
        if found:
            other, tracking = found[0]
            raise OverlapConflict(claim.prefix_text, tracking or "?", other.prefix_text)


def claim_space(session: Session, application: Application, *, tz: dt.tzinfo) -> list[Claim]:
    """Claim every prefix of `application` over its validity, or raise OverlapConflict.

    The application must have valid_from and valid_until set. The insert runs in a savepoint: if
    a concurrent transaction committed an overlapping claim first, PostgreSQL's exclusion
    constraint refuses ours, and the conflicting registration is then named from the database.
    """
    if application.valid_from is None or application.valid_until is None:
        raise StateConflict("cannot claim address space without validity dates")
    end = validity_end(application.valid_until, tz)
    claims = [
        Claim(
            application_id=application.id,
            prefix_text=p.prefix,
            range_start=p.range_start,
            range_end=p.range_end,
            valid_from=application.valid_from,
            valid_end=end,
        )
        for p in application.prefixes
    ]
    _raise_first_conflict(session, application, claims)
    try:
        with session.begin_nested():
            session.add_all(claims)
            session.flush()
    except IntegrityError:
        fresh = [
            Claim(
                application_id=c.application_id,
                prefix_text=c.prefix_text,
                range_start=c.range_start,
                range_end=c.range_end,
                valid_from=c.valid_from,
                valid_end=c.valid_end,
            )
            for c in claims
        ]
        _raise_first_conflict(session, application, fresh)
        raise
    return claims


def release_space(session: Session, application_id: int) -> int:
    """Drop the claims of a registration that no longer holds (revoked, withdrawn, expired);
    never of a suspended one, which may be restored."""
    result = session.execute(
        delete(Claim)
        .where(Claim.application_id == application_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
