"""What portal routes take from the app: the API helper's request dependencies (web.auth), under
the names the portal uses, and the one role check portal routes make inside their bodies."""

from __future__ import annotations

from vpnreg.registry.views import UserView
from vpnreg.web.auth import AppClock as PortalClock
from vpnreg.web.auth import Config, DbSession, OptionalUser
from vpnreg.web.auth import CurrentUser as PortalUser
from vpnreg.web.problems import Problem
from vpnreg.web.reads import ReadDb


def forbid_unless(user: UserView, *roles: str) -> None:
    """The policy table already refuses other roles; this keeps a page honest if it is reused."""
    if user.role not in roles:
        raise Problem(
            403, "role-not-allowed", f"{user.username} ({user.role}) may not use this page"
        )


__all__ = [
    "Config",
    "DbSession",
    "OptionalUser",
    "PortalClock",
    "PortalUser",
    "ReadDb",
    "forbid_unless",
]
