"""Self-service for applicants: signing up an organisation with its first login, and keeping the
organisation's public details (name, registration number) up to date.

Sign-up is a step no registered user performs, so it acts as the trusted string actor
SIGNUP_ACTOR; the audit log records that name for both the organisation and the user.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import Role
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import FieldError, Forbidden, NotFound, ValidationFailed
from vpnreg.registry.models import Category, Organisation
from vpnreg.registry.services.actors import Person, actor_role
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.directory import add_organisation, add_user, user_field_errors
from vpnreg.registry.services.snapshots import organisation_snapshot
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import OrganisationView, UserView

SIGNUP_ACTOR = "web:signup"
#: Categories whose applicants are people, identified by a national ID number rather than a
#: company registration number.
INDIVIDUAL_CATEGORIES = frozenset({Category.FREELANCER.value})
MAX_REGISTRATION_NUMBER = 64


def _registration_errors(
    category: str, registration_number: str | None, national_id: str | None
) -> list[FieldError]:
    if category in INDIVIDUAL_CATEGORIES:
        if not (national_id or "").strip():
            return [
                FieldError("national_id", "required", "individuals give a national ID number", "")
            ]
        return []
    number = (registration_number or "").strip()
    if not number:
        return [
            FieldError(
                "registration_number", "required", "organisations give a registration number", ""
            )
        ]
    if len(number) > MAX_REGISTRATION_NUMBER:
        return [FieldError("registration_number", "too_long", "at most 64 characters", number)]
    return []


def sign_up(
    session: Session,
    *,
    name: str,
    category: str,
    username: str,
    password: str,
    now: dt.datetime,
    config: ServiceConfig,
    registration_number: str | None = None,
    national_id: str | None = None,
) -> UserView:
    """Create an organisation and its first applicant login in one transaction.

    An individual (freelancer) gives a national ID number, stored only as a keyed hash and its
    last four digits; every other category gives a registration number. Every problem with the
    form is reported at once (ValidationFailed), and nothing is created unless all is well.
    """
    with service_transaction(session):
        errors = _registration_errors(category, registration_number, national_id)
        errors += user_field_errors(session, username=username, password=password)
        individual = category in INDIVIDUAL_CATEGORIES
        try:
            org = add_organisation(
                session,
                name=name,
                category=category,
                actor=SIGNUP_ACTOR,
                now=now,
                config=config,
                registration_number=None if individual else (registration_number or "").strip(),
                national_id=(national_id or "").strip() if individual else None,
            )
        except ValidationFailed as exc:
            raise ValidationFailed(list(exc.errors) + errors) from None
        if errors:
            raise ValidationFailed(errors)
        user = add_user(
            session,
            username=username,
            password=password,
            role=Role.APPLICANT,
            actor=SIGNUP_ACTOR,
            now=now,
            organisation_id=org.id,
        )
    return UserView.of(user)


def update_organisation(
    session: Session,
    *,
    organisation_id: int,
    actor: Person,
    now: dt.datetime,
    name: str,
    registration_number: str | None,
) -> OrganisationView:
    """Change an organisation's public details. An applicant changes only its own organisation;
    the regulator and admins any. Category and national ID are not self-service."""
    role = actor_role(actor)
    if role not in (Role.APPLICANT, Role.REGULATOR, Role.ADMIN):
        raise Forbidden(f"{actor.username} ({role}) may not change organisations")
    if role is Role.APPLICANT and actor.organisation_id != organisation_id:
        raise NotFound("organisation", organisation_id)
    with service_transaction(session):
        org = session.get(Organisation, organisation_id)
        if org is None:
            raise NotFound("organisation", organisation_id)
        errors: list[FieldError] = []
        name = name.strip()
        if not name:
            errors.append(FieldError("name", "required", "a name is required", name))
        elif len(name) > 200:
            errors.append(FieldError("name", "too_long", "at most 200 characters", name))
        elif name != org.name and session.scalar(
            select(Organisation.id).where(Organisation.name == name)
        ):
            errors.append(FieldError("name", "duplicate", f"{name!r} is already registered", name))
        number = (registration_number or "").strip() or None
        if org.category not in INDIVIDUAL_CATEGORIES:
            errors += _registration_errors(org.category, number, None)
        elif number is not None:
            errors.append(
                FieldError(
                    "registration_number",
                    "not_allowed",
                    "individuals are identified by their national ID number",
                    number,
                )
            )
        if errors:
            raise ValidationFailed(errors)
        before = organisation_snapshot(org)
        if before["name"] == name and before["registration_number"] == number:
            return OrganisationView.of(org)
        org.name = name
        org.registration_number = number
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor.username,
            action="update_organisation",
            object_type="organisation",
            object_id=org.id,
            before=before,
            after=organisation_snapshot(org),
        )
    return OrganisationView.of(org)
