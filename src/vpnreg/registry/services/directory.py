"""The directory: organisations, ISPs, sector bodies and users, and logging in."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import Role
from vpnreg.registry.audit_log import add_audited, append_event
from vpnreg.registry.errors import (
    FieldError,
    Forbidden,
    NotFound,
    StateConflict,
    ValidationFailed,
)
from vpnreg.registry.models import ISP, Category, Organisation, SectorBody, SectorBodyCategory, User
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.passwords import hash_password, verify_password
from vpnreg.registry.services.snapshots import (
    isp_snapshot,
    organisation_snapshot,
    sector_body_snapshot,
    user_snapshot,
)
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import IspView, OrganisationView, SectorBodyView, UserView

_ADMINS = (Role.ADMIN, Role.REGULATOR)
_NATIONAL_ID = re.compile(r"^[0-9]{5}-?[0-9]{7}-?[0-9]$|^[0-9]{6,20}$")


def national_id_hash(national_id: str, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the ID number's digits under `key`."""
    digits = re.sub(r"[^0-9]", "", national_id)
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()


def _check_name(session: Session, model: type[Organisation | ISP | SectorBody], name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed([FieldError("name", "required", "a name is required", name)])
    if session.scalar(select(model.id).where(model.name == name)) is not None:
        raise ValidationFailed(
            [FieldError("name", "duplicate", f"{name!r} is already registered", name)]
        )
    return name


def _check_category(category: str, field: str = "category") -> str:
    if category not in set(Category):
        allowed = ", ".join(Category)
        raise ValidationFailed(
            [
                FieldError(
                    field, "unknown_category", f"unknown category; use one of {allowed}", category
                )
            ]
        )
    return category


def create_organisation(
    session: Session,
    *,
    name: str,
    category: str,
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    registration_number: str | None = None,
    national_id: str | None = None,
) -> OrganisationView:
    """Register an organisation; an individual gives a national ID number instead.

    The ID number is stored only as a keyed hash plus its last four digits.
    """
    require_role(actor, *_ADMINS)
    with service_transaction(session):
        org = add_organisation(
            session,
            name=name,
            category=category,
            actor=actor,
            now=now,
            config=config,
            registration_number=registration_number,
            national_id=national_id,
        )
    return OrganisationView.of(org)


def add_organisation(
    session: Session,
    *,
    name: str,
    category: str,
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    registration_number: str | None = None,
    national_id: str | None = None,
) -> Organisation:
    """The body of create_organisation inside the caller's transaction (no role check, no
    commit), so a sign-up can create the organisation and its first user atomically."""
    name = _check_name(session, Organisation, name)
    _check_category(category)
    id_hash = last4 = None
    if national_id is not None:
        if not _NATIONAL_ID.match(national_id.strip()):
            raise ValidationFailed(
                [FieldError("national_id", "malformed", "not a national ID number", "****")]
            )
        id_hash = national_id_hash(national_id, config.id_hash_key)
        last4 = re.sub(r"[^0-9]", "", national_id)[-4:]
    org = Organisation(
        name=name,
        category=category,
        registration_number=registration_number,
        national_id_hash=id_hash,
        national_id_last4=last4,
        created_at=now,
    )
    return add_audited(
        session,
        org,
        time=now,
        actor=actor_name(actor),
        action="create_organisation",
        object_type="organisation",
        snapshot=organisation_snapshot,
    )


def create_isp(session: Session, *, name: str, actor: Actor, now: dt.datetime) -> IspView:
    require_role(actor, *_ADMINS)
    with service_transaction(session):
        isp = ISP(name=_check_name(session, ISP, name), created_at=now)
        add_audited(
            session,
            isp,
            time=now,
            actor=actor_name(actor),
            action="create_isp",
            object_type="isp",
            snapshot=isp_snapshot,
        )
    return IspView.of(isp)


def create_sector_body(
    session: Session, *, name: str, categories: list[str], actor: Actor, now: dt.datetime
) -> SectorBodyView:
    require_role(actor, *_ADMINS)
    with service_transaction(session):
        name = _check_name(session, SectorBody, name)
        for i, category in enumerate(categories):
            _check_category(category, f"categories[{i}]")
        body = SectorBody(
            name=name,
            created_at=now,
            category_rows=[SectorBodyCategory(category=c) for c in sorted(set(categories))],
        )
        add_audited(
            session,
            body,
            time=now,
            actor=actor_name(actor),
            action="create_sector_body",
            object_type="sector_body",
            snapshot=sector_body_snapshot,
        )
    return SectorBodyView.of(body)


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role | str,
    actor: Actor,
    now: dt.datetime,
    organisation_id: int | None = None,
    isp_id: int | None = None,
    sector_body_id: int | None = None,
) -> UserView:
    """Create a login. An applicant needs an organisation, an ISP user an ISP, a sector user a
    sector body; other roles take none of them."""
    require_role(actor, Role.ADMIN)
    with service_transaction(session):
        user = add_user(
            session,
            username=username,
            password=password,
            role=role,
            actor=actor,
            now=now,
            organisation_id=organisation_id,
            isp_id=isp_id,
            sector_body_id=sector_body_id,
        )
    return UserView.of(user)


def _link_errors(
    session: Session,
    role: Role,
    organisation_id: int | None,
    isp_id: int | None,
    sector_body_id: int | None,
) -> list[FieldError]:
    """An applicant needs an organisation, an ISP user an ISP, a sector user a sector body."""
    errors: list[FieldError] = []
    links = {
        "organisation_id": (organisation_id, Role.APPLICANT, Organisation),
        "isp_id": (isp_id, Role.ISP, ISP),
        "sector_body_id": (sector_body_id, Role.SECTOR_BODY, SectorBody),
    }
    for field, (value, needed_by, model) in links.items():
        if role is needed_by and value is None:
            errors.append(FieldError(field, "required", f"a {role} user needs {field}", None))
        elif role is not needed_by and value is not None:
            errors.append(FieldError(field, "not_allowed", f"a {role} user has no {field}", value))
        elif value is not None and session.get(model, value) is None:
            errors.append(FieldError(field, "not_found", f"no such {field}", value))
    return errors


#: The roles a person's login may have; gateways and the system act through tokens and code.
PERSON_ROLES = frozenset(
    {Role.APPLICANT, Role.ISP, Role.SECTOR_BODY, Role.REGULATOR, Role.AUDITOR, Role.ADMIN}
)
#: Usernames: letters, digits, dot, dash and underscore, starting with a letter or digit. Names
#: with other characters could pass for the system's own pseudo-actors ("web:signup", "cli:...").
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _parse_role(role: Role | str) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        raise ValidationFailed([FieldError("role", "unknown_role", "unknown role", role)]) from None
    if parsed not in PERSON_ROLES:
        raise ValidationFailed(
            [
                FieldError(
                    "role",
                    "not_a_person_role",
                    f"a login cannot have the role {parsed} (machines use API tokens)",
                    role,
                )
            ]
        )
    return parsed


def user_field_errors(session: Session, *, username: str, password: str) -> list[FieldError]:
    """What is wrong with a new login's username and password (empty list: nothing)."""
    errors: list[FieldError] = []
    username = username.strip()
    if not username:
        errors.append(FieldError("username", "required", "a username is required", username))
    elif len(username) > 100:
        errors.append(FieldError("username", "too_long", "at most 100 characters", username[:100]))
    elif USERNAME.fullmatch(username) is None:
        errors.append(
            FieldError(
                "username",
                "bad_characters",
                "use letters, digits, '.', '-' and '_' only, starting with a letter or digit",
                username,
            )
        )
    elif session.scalar(select(User.id).where(User.username == username)) is not None:
        errors.append(FieldError("username", "duplicate", "username taken", username))
    if len(password) < 8:
        errors.append(FieldError("password", "too_short", "at least 8 characters", None))
    return errors


def add_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role | str,
    actor: Actor,
    now: dt.datetime,
    organisation_id: int | None = None,
    isp_id: int | None = None,
    sector_body_id: int | None = None,
) -> User:
    """The body of create_user inside the caller's transaction (no role check, no commit)."""
    errors = user_field_errors(session, username=username, password=password)
    parsed = _parse_role(role)
    errors += _link_errors(session, parsed, organisation_id, isp_id, sector_body_id)
    if errors:
        raise ValidationFailed(errors)
    user = User(
        username=username.strip(),
        password_hash=hash_password(password),
        role=parsed.value,
        organisation_id=organisation_id,
        isp_id=isp_id,
        sector_body_id=sector_body_id,
        active=True,
        created_at=now,
    )
    return add_audited(
        session,
        user,
        time=now,
        actor=actor_name(actor),
        action="create_user",
        object_type="user",
        snapshot=user_snapshot,
    )


def _load_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user", user_id)
    return user


def set_user_role(
    session: Session,
    *,
    user_id: int,
    role: Role | str,
    actor: Actor,
    now: dt.datetime,
    organisation_id: int | None = None,
    isp_id: int | None = None,
    sector_body_id: int | None = None,
) -> UserView:
    """Give a user another role (with the link that role needs). An admin cannot take the admin
    role from itself, so the registry never loses its last way in by accident."""
    require_role(actor, Role.ADMIN)
    with service_transaction(session):
        user = _load_user(session, user_id)
        parsed = _parse_role(role)
        if parsed in (Role.SYSTEM, Role.GATEWAY):
            raise ValidationFailed(
                [FieldError("role", "not_allowed", "machines use API tokens, not logins", role)]
            )
        if not isinstance(actor, str) and actor.id == user.id and parsed is not Role.ADMIN:
            raise Forbidden("an admin cannot take the admin role from itself")
        errors = _link_errors(session, parsed, organisation_id, isp_id, sector_body_id)
        if errors:
            raise ValidationFailed(errors)
        before = user_snapshot(user)
        user.role = parsed.value
        user.organisation_id = organisation_id
        user.isp_id = isp_id
        user.sector_body_id = sector_body_id
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="set_user_role",
            object_type="user",
            object_id=user.id,
            before=before,
            after=user_snapshot(user),
        )
    return UserView.of(user)


def set_user_active(
    session: Session, *, user_id: int, active: bool, actor: Actor, now: dt.datetime
) -> UserView:
    """Deactivate (no sign-in, running sessions end at their next request) or reactivate a
    user. An admin cannot deactivate itself."""
    require_role(actor, Role.ADMIN)
    with service_transaction(session):
        user = _load_user(session, user_id)
        if not isinstance(actor, str) and actor.id == user.id and not active:
            raise Forbidden("an admin cannot deactivate itself")
        if user.active == active:
            state = "active" if active else "inactive"
            raise StateConflict(f"user {user.username} is already {state}")
        before = user_snapshot(user)
        user.active = active
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="activate_user" if active else "deactivate_user",
            object_type="user",
            object_id=user.id,
            before=before,
            after=user_snapshot(user),
        )
    return UserView.of(user)


def authenticate(session: Session, *, username: str, password: str) -> UserView | None:
    """The active user with this username and password, or None (same cost either way)."""
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        return None
    return UserView.of(user)
