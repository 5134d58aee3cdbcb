"""Who is acting: a logged-in user, or a trusted system actor named by a string."""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy.orm import Session

from vpnreg.core.review import Role
from vpnreg.registry.errors import Forbidden
from vpnreg.registry.models import Application, SectorBodyCategory, User
from vpnreg.registry.views import ApplicationView, UserView

#: A person acting: the ORM row inside the registry, its read model when a caller passes it.
Person: TypeAlias = User | UserView
#: A person, or a trusted in-process actor such as "cli:import", "cli:admin" or "system".
Actor: TypeAlias = Person | str


def actor_name(actor: Actor) -> str:
    return actor if isinstance(actor, str) else actor.username


def actor_role(user: Person) -> Role:
    if not user.active:
        raise Forbidden(f"user {user.username} is disabled")
    return Role(user.role)


def require_role(actor: Actor, *roles: Role) -> None:
    """A string actor is trusted (it is the CLI or the system); a user needs one of `roles`."""
    if isinstance(actor, str):
        return
    role = actor_role(actor)
    if role not in roles:
        wanted = " or ".join(str(r) for r in roles)
        raise Forbidden(f"{actor.username} ({role}) may not do this; it needs {wanted}")


def require_scope(session: Session, user: Person, app: Application | ApplicationView) -> None:
    """Besides its role, a user acts only on applications that are its business."""
    role = actor_role(user)
    if role is Role.APPLICANT and user.organisation_id != app.organisation_id:
        raise Forbidden(
            f"{user.username} does not act for the organisation of {app.tracking_number}"
        )
    if role is Role.ISP and user.isp_id != app.isp_id:
        raise Forbidden(f"{user.username} is not a user of the ISP of {app.tracking_number}")
    if role is Role.SECTOR_BODY:
        covered = session.get(SectorBodyCategory, (user.sector_body_id, app.category))
        if user.sector_body_id is None or covered is None:
            raise Forbidden(
                f"{user.username}'s sector body does not cover category {app.category} "
                f"of {app.tracking_number}"
            )
