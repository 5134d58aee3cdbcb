"""JSON shapes of the API, one per use (Create, Public, ...), built from registry objects."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from vpnreg.registry.schemas import MAX_PREFIXES, PrefixIn, Protocols, SubscriberId
from vpnreg.registry.services.lookup import LookupResult
from vpnreg.registry.views import ApplicationView, IspView, OrganisationView
from vpnreg.web.bounds import MAX_ID

#: Control characters, but tab and line breaks: never part of a person's text, and PostgreSQL
#: refuses to store NUL (a 500 on PostgreSQL before these patterns, found by schemathesis).
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
#: Text without control characters (query filters, free text).
TEXT = rf"^[^{_CONTROL}]*$"
#: ... with somewhere a character that is not white space: the services strip reasons and names
#: and refuse what is left empty, and the document says so. (Without control characters, the
#: regex engine's white space is exactly `str.strip`'s; the engine is linear in the input.)
FILLED_IN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
#: A name from a fixed list (states, categories): an unknown one matches nothing.
KEYWORD = r"^[a-z_]*$"
_REQUEST = ConfigDict(extra="forbid")


def filled_in(max_length: int, description: str | None = None) -> Any:
    """A field a person must fill in: not blank, at most `max_length` characters."""
    return Field(min_length=1, max_length=max_length, pattern=FILLED_IN, description=description)


class ApplicationCreate(BaseModel):
    model_config = _REQUEST

    #: The applicant's own organisation when left out.
    organisation_id: int | None = Field(default=None, ge=0, le=MAX_ID)
    isp_id: int = Field(ge=0, le=MAX_ID)
    #: Prefix-bound: the prefixes. Subscriber-bound: leave out and give subscriber_id.
    prefixes: list[PrefixIn] = Field(default_factory=list, max_length=MAX_PREFIXES)
    subscriber_id: SubscriberId | None = Field(
        default=None,
        description="Instead of prefixes: the ISP's account id of the line; the registration "
        "then holds whatever addresses the ISP binds to it",
    )
    protocols: Protocols


class PrefixPublic(BaseModel):
    prefix: str
    peers: list[str]


class ApplicationPublic(BaseModel):
    id: int
    tracking_number: str | None
    organisation_id: int
    organisation_name: str
    isp_id: int
    isp_name: str
    category: str
    state: str
    version: int
    valid_from: dt.datetime | None
    valid_until: dt.date | None
    renews_id: int | None
    rejected_from: str | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    prefixes: list[PrefixPublic]
    #: 'prefixes' or 'subscriber' (its addresses are the ISP's bindings of subscriber_id).
    bound_to: str = "prefixes"
    subscriber_id: str | None = None
    protocols: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, app: ApplicationView) -> ApplicationPublic:
        return cls(
            id=app.id,
            tracking_number=app.tracking_number,
            organisation_id=app.organisation_id,
            organisation_name=app.organisation_name,
            isp_id=app.isp_id,
            isp_name=app.isp_name,
            category=app.category,
            state=app.state,
            version=app.version,
            valid_from=app.valid_from,
            valid_until=app.valid_until,
            renews_id=app.renews_id,
            rejected_from=app.rejected_from,
            created_by=app.created_by,
            created_at=app.created_at,
            updated_at=app.updated_at,
            prefixes=[PrefixPublic(prefix=p.prefix, peers=list(p.peers)) for p in app.prefixes],
            bound_to=app.bound_to,
            # A legacy import's customer reference is the ISP's business: shown only where it
            # is what the registration is bound to.
            subscriber_id=app.subscriber_id if app.subscriber_bound else None,
            protocols=list(app.protocols),
        )


class ApplicationPage(BaseModel):
    items: list[ApplicationPublic]
    total: int
    limit: int
    offset: int


class TimelineEntryPublic(BaseModel):
    at: dt.datetime
    actor: str
    action: str
    from_state: str
    to_state: str
    reason_code: str | None
    reason: str | None


class RejectBody(BaseModel):
    model_config = _REQUEST

    reason_code: str = filled_in(64, "e.g. not_subscriber, incomplete_documents, not_eligible")
    reason: str = filled_in(4000)


class RevokeBody(BaseModel):
    model_config = _REQUEST

    reason: str = filled_in(4000)
    #: Blank means the default.
    reason_code: str = Field(default="revoked", max_length=64, pattern=TEXT)


class AppealBody(BaseModel):
    model_config = _REQUEST

    text: str = filled_in(8000, "the grounds of the appeal")


class DecisionBody(BaseModel):
    model_config = _REQUEST

    reason: str = filled_in(4000)


class AttestationWithdrawalBody(BaseModel):
    model_config = _REQUEST

    reason: str = filled_in(
        4000, "why the ISP no longer attests, e.g. line cancelled, address reassigned"
    )


class AmendPeersBody(BaseModel):
    model_config = _REQUEST

    prefix: str = Field(min_length=1, max_length=64)
    peers: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)


class AmendmentPublic(BaseModel):
    id: int
    prefix_id: int
    peers: list[str]
    state: str
    requested_by: str
    requested_at: dt.datetime


class AmendProtocolsBody(BaseModel):
    model_config = _REQUEST

    protocols: Protocols


class ProtocolAmendmentPublic(BaseModel):
    """A requested change of the VPN protocols: pending until the regulator approves (then in
    force) or refuses (the old list kept)."""

    id: int
    application_id: int
    protocols: list[str]
    state: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None


class OrganisationCreate(BaseModel):
    model_config = _REQUEST

    name: str = filled_in(200)
    category: str = Field(
        min_length=1,
        max_length=32,
        pattern=KEYWORD,
        description="software_house, call_centre, freelancer, bank, foreign_mission or other",
    )
    registration_number: str | None = Field(default=None, max_length=64, pattern=TEXT)
    national_id: str | None = Field(default=None, max_length=32, pattern=TEXT)


class OrganisationPublic(BaseModel):
    id: int
    name: str
    category: str
    registration_number: str | None
    national_id_last4: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, org: OrganisationView) -> OrganisationPublic:
        return cls.model_validate(org, from_attributes=True)


class ISPPublic(BaseModel):
    id: int
    name: str

    @classmethod
    def of(cls, isp: IspView) -> ISPPublic:
        return cls(id=isp.id, name=isp.name)


class PrefixRowPublic(BaseModel):
    prefix: str
    application_id: int
    tracking_number: str | None
    state: str
    category: str
    valid_until: dt.date | None
    peers: list[str]


class PrefixPage(BaseModel):
    items: list[PrefixRowPublic]
    total: int
    limit: int
    offset: int


class BindingPublic(BaseModel):
    """How an ISP's binding holds an address: its port range and its end (never the subscriber)."""

    ports: tuple[int, int]
    until: dt.datetime


class LookupPublic(BaseModel):
    ip: str
    registered: bool
    registration_id: int | None
    tracking_number: str | None
    category: str | None
    valid_until: dt.date | None
    prefix: str | None
    binding: BindingPublic | None = None

    @classmethod
    def of(cls, result: LookupResult) -> LookupPublic:
        binding = None
        if result.binding_ports is not None and result.binding_until is not None:
            binding = BindingPublic(ports=result.binding_ports, until=result.binding_until)
        return cls(
            ip=result.ip,
            registered=result.registered,
            registration_id=result.registration_id,
            tracking_number=result.tracking_number,
            category=result.category,
            valid_until=result.valid_until,
            prefix=result.prefix,
            binding=binding,
        )


class AuditEventPublic(BaseModel):
    seq: int
    time: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: Any
    after: Any
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    total: int
    limit: int
    offset: int


class StatsPublic(BaseModel):
    applications: int
    organisations: int
    registered_prefixes: int
    by_state: dict[str, int]
    by_category: dict[str, int]


class MePublic(BaseModel):
    """Who the API thinks is calling."""

    name: str
    role: str | None
    via: str
    organisation_id: int | None = None
    isp_id: int | None = None
    sector_body_id: int | None = None
    csrf_token: str | None = None


class DocumentPublic(BaseModel):
    id: int
    application_id: int
    kind: str
    filename: str
    sha256: str
    size: int
    media_type: str
    uploaded_by: str
    uploaded_at: dt.datetime
