"""Read-only questions the portal and the API ask: lists with filters and pages, timelines.

Every answer is a read model (vpnreg.registry.views) or plain data, never an ORM object.

Every list takes the `viewer`: a user sees only what is its business (an applicant its
organisation's applications, an ISP the applications naming it, a sector body its categories);
regulators, auditors and admins see everything. `viewer=None` means a trusted caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.orm import Session

from vpnreg.core.ipspace import PrefixError, parse_prefix
from vpnreg.core.review import Role
from vpnreg.registry.claims import range_keys
from vpnreg.registry.errors import NotFound
from vpnreg.registry.models import (
    ISP,
    Appeal,
    Application,
    ApplicationPrefix,
    AuditLogRow,
    Organisation,
    PeerAmendment,
    Review,
    SectorBody,
    SectorBodyCategory,
    User,
)
from vpnreg.registry.services.actors import Person
from vpnreg.registry.views import (
    AmendmentView,
    AppealView,
    ApplicationView,
    IspView,
    OrganisationView,
    SectorBodyView,
    UserView,
)

#: Roles that see every application.
_SEE_ALL = frozenset({Role.REGULATOR.value, Role.AUDITOR.value, Role.ADMIN.value})
MAX_PAGE = 200


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: the items, the total matching, and where the page starts."""

    items: Sequence[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class TimelineEntry:
    """One step in an application's history."""

    at: dt.datetime
    actor: str
    action: str
    from_state: str
    to_state: str
    reason_code: str | None
    reason: str | None


@dataclass(frozen=True)
class AuditEvent:
    """One audit log record as plain data."""

    seq: int
    time: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: Any
    after: Any
    hash: str


def _covered_categories(user: Person) -> Any:
    return select(SectorBodyCategory.category).where(
        SectorBodyCategory.sector_body_id == user.sector_body_id
    )


def visibility(viewer: Person | None) -> ColumnElement[bool]:
    """The condition on Application rows that `viewer` may see."""
    if viewer is None or viewer.role in _SEE_ALL:
        return true()
    if not viewer.active:
        return false()
    if viewer.role == Role.APPLICANT.value and viewer.organisation_id is not None:
        return Application.organisation_id == viewer.organisation_id
    if viewer.role == Role.ISP.value and viewer.isp_id is not None:
        return Application.isp_id == viewer.isp_id
    if viewer.role == Role.SECTOR_BODY.value and viewer.sector_body_id is not None:
        return Application.category.in_(_covered_categories(viewer))
    return false()


def visible_application(
    session: Session, *, application_id: int, viewer: Person | None
) -> ApplicationView:
    """The application if `viewer` may see it; NotFound otherwise (its existence is not told)."""
    app = session.scalar(
        select(Application).where(Application.id == application_id, visibility(viewer))
    )
    if app is None:
        raise NotFound("application", application_id)
    return ApplicationView.of(app)


def list_applications(
    session: Session,
    *,
    viewer: Person | None,
    state: str | None = None,
    category: str | None = None,
    organisation_id: int | None = None,
    isp_id: int | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[ApplicationView]:
    """Applications `viewer` may see, newest first, filtered, one page at a time.

    `search` matches the start of the tracking number or of one of the prefixes.
    """
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    conditions: list[ColumnElement[bool]] = [visibility(viewer)]
    if state:
        conditions.append(Application.state == state)
    if category:
        conditions.append(Application.category == category)
    if organisation_id is not None:
        conditions.append(Application.organisation_id == organisation_id)
    if isp_id is not None:
        conditions.append(Application.isp_id == isp_id)
    if search:
        text = search.strip()
        conditions.append(
            or_(
                Application.tracking_number.startswith(text.upper(), autoescape=True),
                Application.prefixes.any(
                    ApplicationPrefix.prefix.startswith(text, autoescape=True)
                ),
            )
        )
    total = session.scalar(select(func.count()).select_from(Application).where(*conditions)) or 0
    items = (
        session.scalars(
            select(Application)
            .where(*conditions)
            .order_by(Application.id.desc())
            .limit(limit)
            .offset(offset)
        )
        .unique()
        .all()
    )
    views = [ApplicationView.of(a) for a in items]
    return Page(items=views, total=int(total), limit=limit, offset=offset)


def application_timeline(session: Session, *, application_id: int) -> list[TimelineEntry]:
    """Every review step of the application, oldest first."""
    rows = session.scalars(
        select(Review).where(Review.application_id == application_id).order_by(Review.id)
    )
    return [
        TimelineEntry(
            at=r.created_at,
            actor=r.actor,
            action=r.action,
            from_state=r.from_state,
            to_state=r.to_state,
            reason_code=r.reason_code,
            reason=r.reason,
        )
        for r in rows
    ]


def application_appeals(session: Session, *, application_id: int) -> list[AppealView]:
    return [
        AppealView.of(a)
        for a in session.scalars(
            select(Appeal).where(Appeal.application_id == application_id).order_by(Appeal.id)
        )
    ]


def pending_amendments(session: Session, *, application_id: int) -> list[AmendmentView]:
    return [
        AmendmentView.of(a)
        for a in session.scalars(
            select(PeerAmendment)
            .join(ApplicationPrefix, ApplicationPrefix.id == PeerAmendment.prefix_id)
            .where(
                ApplicationPrefix.application_id == application_id,
                PeerAmendment.state == "pending",
            )
            .order_by(PeerAmendment.id)
        )
    ]


def _organisations_of(viewer: Person | None) -> Any:
    """The organisations `viewer` may see: its own for an applicant; all for the regulator side;
    none for the other roles. None means the viewer may see none at all."""
    query = select(Organisation)
    if viewer is not None and viewer.role not in _SEE_ALL:
        if viewer.role != Role.APPLICANT.value or viewer.organisation_id is None:
            return None
        query = query.where(Organisation.id == viewer.organisation_id)
    return query


def list_organisations(
    session: Session, *, viewer: Person | None, limit: int = MAX_PAGE, offset: int = 0
) -> list[OrganisationView]:
    """One page of the organisations `viewer` may see, by name."""
    query = _organisations_of(viewer)
    if query is None:
        return []
    limit = max(1, min(limit, MAX_PAGE))
    page = query.order_by(Organisation.name, Organisation.id).limit(limit).offset(max(0, offset))
    return [OrganisationView.of(o) for o in session.scalars(page)]


def get_organisation(
    session: Session, *, organisation_id: int, viewer: Person | None
) -> OrganisationView:
    query = _organisations_of(viewer)
    org = None if query is None else session.scalar(query.where(Organisation.id == organisation_id))
    if org is None:
        raise NotFound("organisation", organisation_id)
    return OrganisationView.of(org)


def list_isps(session: Session) -> list[IspView]:
    return [IspView.of(i) for i in session.scalars(select(ISP).order_by(ISP.name))]


def list_sector_bodies(session: Session) -> list[SectorBodyView]:
    return [
        SectorBodyView.of(b) for b in session.scalars(select(SectorBody).order_by(SectorBody.name))
    ]


def get_user(session: Session, *, user_id: int) -> UserView:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user", user_id)
    return UserView.of(user)


def list_users(session: Session, *, limit: int = MAX_PAGE, offset: int = 0) -> Page[UserView]:
    """One page of the users, by username."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    total = session.scalar(select(func.count()).select_from(User)) or 0
    users = session.scalars(select(User).order_by(User.username).limit(limit).offset(offset))
    return Page(items=[UserView.of(u) for u in users], total=int(total), limit=limit, offset=offset)


@dataclass(frozen=True)
class PrefixRow:
    """One claimed prefix with the application it belongs to."""

    prefix: str
    application_id: int
    tracking_number: str | None
    state: str
    category: str
    valid_until: dt.date | None
    peers: tuple[str, ...]


def list_prefixes(
    session: Session,
    *,
    viewer: Person | None,
    states: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> Page[PrefixRow]:
    """Prefixes of the applications `viewer` may see, by address."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    conditions: list[ColumnElement[bool]] = [visibility(viewer)]
    if states:
        conditions.append(Application.state.in_(list(states)))
    base = select(ApplicationPrefix, Application).join(
        Application, Application.id == ApplicationPrefix.application_id
    )
    total = session.scalar(
        select(func.count())
        .select_from(ApplicationPrefix)
        .join(Application, Application.id == ApplicationPrefix.application_id)
        .where(*conditions)
    )
    rows = session.execute(
        base.where(*conditions)
        .order_by(ApplicationPrefix.range_start, ApplicationPrefix.id)
        .limit(limit)
        .offset(offset)
    ).unique()
    items = [
        PrefixRow(
            prefix=p.prefix,
            application_id=a.id,
            tracking_number=a.tracking_number,
            state=a.state,
            category=a.category,
            valid_until=a.valid_until,
            peers=tuple(q.peer for q in p.peers),
        )
        for p, a in rows
    ]
    return Page(items=items, total=int(total or 0), limit=limit, offset=offset)


def list_audit_events(
    session: Session,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[AuditEvent]:
    """Audit events, newest first, one page at a time."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    conditions: list[ColumnElement[bool]] = []
    if object_type:
        conditions.append(AuditLogRow.object_type == object_type)
    if object_id:
        conditions.append(AuditLogRow.object_id == object_id)
    if actor:
        conditions.append(AuditLogRow.actor == actor)
    total = session.scalar(select(func.count()).select_from(AuditLogRow).where(*conditions))
    rows = session.scalars(
        select(AuditLogRow)
        .where(*conditions)
        .order_by(AuditLogRow.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    items = [
        AuditEvent(
            seq=r.seq,
            time=r.time,
            actor=r.actor,
            action=r.action,
            object_type=r.object_type,
            object_id=r.object_id,
            before=r.before,
            after=r.after,
            hash=r.hash,
        )
        for r in rows
    ]
    return Page(items=items, total=int(total or 0), limit=limit, offset=offset)


#: Applications whose prefixes are claimed: in review (pending claims) or decided and not over.
_PENDING_CLAIM_STATES = ("submitted", "isp_verified", "sector_endorsed", "appealed")
#: A suspended registration still holds its space (claims.py), so it still blocks others.
_REGISTRATION_STATES = ("approved", "active", "expiring", "suspended")


@dataclass(frozen=True)
class Overlap:
    """Another application's prefix overlapping an asked prefix.

    `relation` says how: "same" (identical), "inside" (the other is strictly inside the asked
    prefix) or "covers" (the other strictly contains the asked prefix; CIDR prefixes either nest or
    are disjoint, so there is no other way to overlap).
    `registered` is True for a registration (approved, active, expiring, or suspended, which
    keeps its space), False for a claim still in review.
    """

    prefix: str
    other_prefix: str
    application_id: int
    tracking_number: str | None
    state: str
    registered: bool
    relation: str


def overlapping_claims(
    session: Session,
    *,
    prefix_texts: Sequence[str],
    now: dt.datetime,
    exclude_application_id: int | None = None,
) -> dict[str, list[Overlap]]:
    """For each prefix, every registration or pending claim overlapping it, exactly (by
    address range, so smaller prefixes strictly inside count), ordered by address.

    Registrations whose validity ended before `now` but were not yet marked expired are left
    out. Prefixes that do not parse map to an empty list (validation reports them).
    """
    found: dict[str, list[Overlap]] = {}
    for text in prefix_texts:
        found[text] = []
        try:
            network = parse_prefix(text)
        except PrefixError:
            continue
        start, end = range_keys(network)
        conditions: list[ColumnElement[bool]] = [
            ApplicationPrefix.range_start <= end,
            ApplicationPrefix.range_end >= start,
            Application.state.in_(_PENDING_CLAIM_STATES + _REGISTRATION_STATES),
        ]
        if exclude_application_id is not None:
            conditions.append(Application.id != exclude_application_id)
        rows = session.execute(
            select(
                ApplicationPrefix.prefix,
                ApplicationPrefix.range_start,
                ApplicationPrefix.range_end,
                Application.id,
                Application.tracking_number,
                Application.state,
                Application.valid_until,
            )
            .join(Application, Application.id == ApplicationPrefix.application_id)
            .where(*conditions)
            .order_by(ApplicationPrefix.range_start, Application.id)
        ).all()
        for other, o_start, o_end, app_id, tracking, state, valid_until in rows:
            registered = state in _REGISTRATION_STATES
            if registered and valid_until is not None and valid_until < now.date():
                continue
            if (o_start, o_end) == (start, end):
                relation = "same"
            elif o_start >= start and o_end <= end:
                relation = "inside"
            else:
                relation = "covers"
            found[text].append(
                Overlap(
                    prefix=text,
                    other_prefix=other,
                    application_id=app_id,
                    tracking_number=tracking,
                    state=state,
                    registered=registered,
                    relation=relation,
                )
            )
    return found


@dataclass(frozen=True)
class PendingAmendment:
    """A peer amendment waiting for the regulator, with what it would change."""

    id: int
    application_id: int
    tracking_number: str | None
    organisation: str
    version: int
    prefix: str
    current_peers: tuple[str, ...]
    requested_peers: tuple[str, ...]
    requested_by: str
    requested_at: dt.datetime


def open_amendments(
    session: Session, *, viewer: Person | None, application_id: int | None = None
) -> list[PendingAmendment]:
    """Pending peer amendments of the applications `viewer` may see, oldest first."""
    conditions: list[ColumnElement[bool]] = [
        PeerAmendment.state == "pending",
        visibility(viewer),
    ]
    if application_id is not None:
        conditions.append(Application.id == application_id)
    rows = session.execute(
        select(PeerAmendment, ApplicationPrefix, Application)
        .join(ApplicationPrefix, ApplicationPrefix.id == PeerAmendment.prefix_id)
        .join(Application, Application.id == ApplicationPrefix.application_id)
        .where(*conditions)
        .order_by(PeerAmendment.requested_at, PeerAmendment.id)
    ).unique()
    return [
        PendingAmendment(
            id=amendment.id,
            application_id=app.id,
            tracking_number=app.tracking_number,
            organisation=app.organisation.name,
            version=app.version,
            prefix=prefix.prefix,
            current_peers=tuple(p.peer for p in prefix.peers),
            requested_peers=tuple(amendment.peers),
            requested_by=amendment.requested_by,
            requested_at=amendment.requested_at,
        )
        for amendment, prefix, app in rows
    ]
