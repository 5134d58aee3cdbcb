"""An ISP's RADIUS accounting clients: registering one (address, shared secret, attributes),
and reading them all for the accounting server.

The secret is stored as given (verifying a Request Authenticator needs the secret itself), and
never written to the audit log: the audit event records whether it changed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import Role
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import FieldError, NotFound, ValidationFailed
from vpnreg.registry.models import ISP, RadiusClient
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.transaction import service_transaction

__all__ = [
    "DEFAULT_SUBSCRIBER_ATTRIBUTE",
    "RadiusClientView",
    "radius_clients",
    "set_radius_client",
]

#: Where the subscriber id is read from unless the ISP names another attribute.
DEFAULT_SUBSCRIBER_ATTRIBUTE = "User-Name"
#: The longest secret the table holds.
MAX_SECRET_CHARS = 256
# A dictionary attribute name: letters, digits, '-', '_' and '.', as RADIUS dictionaries spell them.
_ATTRIBUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RadiusClientView:
    """A registered client as the accounting server uses it (the secret included)."""

    isp_id: int
    isp_name: str
    address: str
    secret: str
    subscriber_attribute: str
    ports_attribute: str | None


def _address(value: str) -> str:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValidationFailed(
            [FieldError("address", "malformed", "not an IPv4 or IPv6 address", value)]
        ) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the address the server sees a v4 client's packets from
    return str(address)


def _secret(value: str) -> str:
    if not value:
        raise ValidationFailed([FieldError("secret", "required", "the shared secret is empty")])
    if len(value) > MAX_SECRET_CHARS:
        raise ValidationFailed(
            [
                FieldError(
                    "secret",
                    "too_long",
                    f"the shared secret is longer than {MAX_SECRET_CHARS} characters",
                )
            ]
        )
    if any(not 0x20 < ord(c) < 0x7F for c in value):
        # What a BNG's configuration and radclient accept: printable ASCII, no spaces.
        raise ValidationFailed(
            [
                FieldError(
                    "secret",
                    "malformed",
                    "the shared secret must be printable ASCII without spaces",
                )
            ]
        )
    return value


def _attribute(field: str, value: str) -> str:
    if not _ATTRIBUTE_RE.match(value):
        raise ValidationFailed(
            [FieldError(field, "malformed", "not a RADIUS attribute name", value)]
        )
    return value


def set_radius_client(
    session: Session,
    *,
    isp_id: int,
    address: str,
    secret: str,
    actor: Actor,
    now: dt.datetime,
    subscriber_attribute: str = DEFAULT_SUBSCRIBER_ATTRIBUTE,
    ports_attribute: str | None = None,
) -> RadiusClientView:
    """Register the ISP's accounting client at `address`, or update the one registered there.

    An address registered for another ISP is refused (it would move that ISP's accounting).
    One audit event, `radius_client.create` or `radius_client.update`; the secret itself is
    never recorded, only whether it changed."""
    require_role(actor, Role.ADMIN, Role.REGULATOR)
    address = _address(address)
    secret = _secret(secret)
    subscriber_attribute = _attribute("subscriber_attribute", subscriber_attribute)
    if ports_attribute is not None:
        ports_attribute = _attribute("ports_attribute", ports_attribute)
    with service_transaction(session):
        isp = session.get(ISP, isp_id)
        if isp is None:
            raise NotFound("ISP", isp_id)
        row = session.scalar(select(RadiusClient).where(RadiusClient.address == address))
        if row is not None and row.isp_id != isp_id:
            other = session.get(ISP, row.isp_id)
            holder = other.name if other is not None else f"ISP {row.isp_id}"
            raise ValidationFailed(
                [
                    FieldError(
                        "address",
                        "taken",
                        f"{address} is the RADIUS client of {holder}, not of {isp.name}",
                        address,
                    )
                ]
            )
        before = None if row is None else _snapshot(row)
        secret_changed = row is None or row.secret != secret
        if row is None:
            row = RadiusClient(isp_id=isp_id, address=address, created_at=now)
            session.add(row)
        row.secret = secret
        row.subscriber_attribute = subscriber_attribute
        row.ports_attribute = ports_attribute
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="radius_client.create" if before is None else "radius_client.update",
            object_type="radius_client",
            object_id=row.id,
            before=before,
            after={**_snapshot(row), "secret_changed": secret_changed},
        )
        return _view(row, isp.name)


def _snapshot(row: RadiusClient) -> dict[str, object]:
    return {
        "isp_id": row.isp_id,
        "address": row.address,
        "subscriber_attribute": row.subscriber_attribute,
        "ports_attribute": row.ports_attribute,
    }


def _view(row: RadiusClient, isp_name: str) -> RadiusClientView:
    return RadiusClientView(
        isp_id=row.isp_id,
        isp_name=isp_name,
        address=row.address,
        secret=row.secret,
        subscriber_attribute=row.subscriber_attribute,
        ports_attribute=row.ports_attribute,
    )


def radius_clients(session: Session) -> dict[str, RadiusClientView]:
    """Every registered client, by its address (normalised as set_radius_client stores it)."""
    rows = session.execute(
        select(RadiusClient, ISP.name).join(ISP, ISP.id == RadiusClient.isp_id)
    ).all()
    return {row.address: _view(row, name) for row, name in rows}
