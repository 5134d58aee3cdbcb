"""Read models: what the registry hands to the web and the CLI, as plain frozen data.

The ORM objects stay inside the registry: a view holds every value a page, an API answer or a
CLI line needs (an application's organisation and ISP names, its prefixes with their peers), so
nothing outside walks a lazy relation or touches a session after the unit of work has ended.
Each view is built by its `of` from the ORM row, inside the registry only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vpnreg.registry.models import (
    ISP,
    ApiToken,
    Appeal,
    Application,
    Document,
    Organisation,
    PeerAmendment,
    ProtocolAmendment,
    SectorBody,
    User,
)


@dataclass(frozen=True)
class UserView:
    """A user as a caller sees it; services accept it wherever they take the acting user."""

    id: int
    username: str
    role: str
    active: bool
    organisation_id: int | None
    isp_id: int | None
    sector_body_id: int | None
    created_at: dt.datetime

    @classmethod
    def of(cls, user: User | UserView) -> UserView:
        if isinstance(user, UserView):
            return user
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            active=user.active,
            organisation_id=user.organisation_id,
            isp_id=user.isp_id,
            sector_body_id=user.sector_body_id,
            created_at=user.created_at,
        )


@dataclass(frozen=True)
class OrganisationView:
    id: int
    name: str
    category: str
    registration_number: str | None
    national_id_last4: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, org: Organisation) -> OrganisationView:
        return cls(
            id=org.id,
            name=org.name,
            category=org.category,
            registration_number=org.registration_number,
            national_id_last4=org.national_id_last4,
            created_at=org.created_at,
        )


@dataclass(frozen=True)
class IspView:
    id: int
    name: str

    @classmethod
    def of(cls, isp: ISP) -> IspView:
        return cls(id=isp.id, name=isp.name)


@dataclass(frozen=True)
class SectorBodyView:
    id: int
    name: str
    categories: tuple[str, ...]

    @classmethod
    def of(cls, body: SectorBody) -> SectorBodyView:
        return cls(
            id=body.id,
            name=body.name,
            categories=tuple(sorted(row.category for row in body.category_rows)),
        )


@dataclass(frozen=True)
class PrefixView:
    """One prefix of an application and the peer prefixes it is limited to (empty: any)."""

    id: int
    position: int
    prefix: str
    peers: tuple[str, ...]


@dataclass(frozen=True)
class ApplicationView:
    id: int
    tracking_number: str | None
    organisation_id: int
    organisation_name: str
    isp_id: int
    isp_name: str
    category: str
    subscriber_id: str | None
    state: str
    version: int
    valid_from: dt.datetime | None
    valid_until: dt.date | None
    renews_id: int | None
    rejected_from: str | None
    rejected_by: int | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    prefixes: tuple[PrefixView, ...]
    #: 'prefixes' (the prefixes above) or 'subscriber' (the ISP's bindings of subscriber_id).
    bound_to: str = "prefixes"
    #: The VPN protocols the registration allows (canonical order); empty: any.
    protocols: tuple[str, ...] = ()

    @property
    def subscriber_bound(self) -> bool:
        return self.bound_to == "subscriber"

    @classmethod
    def of(cls, app: Application) -> ApplicationView:
        return cls(
            id=app.id,
            tracking_number=app.tracking_number,
            organisation_id=app.organisation_id,
            organisation_name=app.organisation.name,
            isp_id=app.isp_id,
            isp_name=app.isp.name,
            category=app.category,
            subscriber_id=app.subscriber_id,
            state=app.state,
            version=app.version,
            valid_from=app.valid_from,
            valid_until=app.valid_until,
            renews_id=app.renews_id,
            rejected_from=app.rejected_from,
            rejected_by=app.rejected_by,
            created_by=app.created_by,
            created_at=app.created_at,
            updated_at=app.updated_at,
            prefixes=tuple(
                PrefixView(
                    id=p.id,
                    position=p.position,
                    prefix=p.prefix,
                    peers=tuple(q.peer for q in p.peers),
                )
                for p in app.prefixes
            ),
            bound_to=app.bound_to or "prefixes",
            protocols=tuple(app.protocols or ()),
        )


@dataclass(frozen=True)
class DocumentView:
    id: int
    application_id: int
    kind: str
    filename: str
    sha256: str
    size: int
    media_type: str
    uploaded_by: str
    uploaded_at: dt.datetime

    @classmethod
    def of(cls, doc: Document) -> DocumentView:
        return cls(
            id=doc.id,
            application_id=doc.application_id,
            kind=doc.kind,
            filename=doc.filename,
            sha256=doc.sha256,
            size=doc.size,
            media_type=doc.media_type,
            uploaded_by=doc.uploaded_by,
            uploaded_at=doc.uploaded_at,
        )


@dataclass(frozen=True)
class AppealView:
    id: int
    application_id: int
    text: str
    filed_by: str
    filed_at: dt.datetime
    outcome: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None

    @classmethod
    def of(cls, appeal: Appeal) -> AppealView:
        return cls(
            id=appeal.id,
            application_id=appeal.application_id,
            text=appeal.text,
            filed_by=appeal.filed_by,
            filed_at=appeal.filed_at,
            outcome=appeal.outcome,
            decided_by=appeal.decided_by,
            decided_at=appeal.decided_at,
            reason=appeal.reason,
        )


@dataclass(frozen=True)
class AmendmentView:
    id: int
    prefix_id: int
    peers: tuple[str, ...]
    state: str
    requested_by: str
    requested_at: dt.datetime

    @classmethod
    def of(cls, amendment: PeerAmendment) -> AmendmentView:
        return cls(
            id=amendment.id,
            prefix_id=amendment.prefix_id,
            peers=tuple(amendment.peers),
            state=amendment.state,
            requested_by=amendment.requested_by,
            requested_at=amendment.requested_at,
        )


@dataclass(frozen=True)
class ProtocolAmendmentView:
    """A requested change of an application's VPN protocols and where it stands."""

    id: int
    application_id: int
    protocols: tuple[str, ...]
    state: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None

    @classmethod
    def of(cls, amendment: ProtocolAmendment) -> ProtocolAmendmentView:
        return cls(
            id=amendment.id,
            application_id=amendment.application_id,
            protocols=tuple(amendment.protocols),
            state=amendment.state,
            requested_by=amendment.requested_by,
            requested_at=amendment.requested_at,
            decided_by=amendment.decided_by,
            decided_at=amendment.decided_at,
        )


@dataclass(frozen=True)
class TokenView:
    """An API token as an authenticated caller: `role` is the token's own (stored) role, `user`
    the user it acts as, if bound (then the user's current role is the one that counts)."""

    id: int
    name: str
    role: str
    user_id: int | None
    user: UserView | None
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenView:
        return cls(
            id=token.id,
            name=token.name,
            role=token.role,
            user_id=token.user_id,
            user=None if token.user is None else UserView.of(token.user),
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )
