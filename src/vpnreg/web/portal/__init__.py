"""The portal's HTML pages: public lookup/status/statistics, applicant pages, reviewer queues.

The app (web.app.ROUTER_MODULES) includes `router`; each page declares who may see it, and the
app-wide enforce_policy dependency checks roles and, for every POST, the CSRF token.
"""

from __future__ import annotations

from types import ModuleType

from fastapi import APIRouter

from vpnreg.web.portal import (
    admin,
    applicant,
    explain,
    gateways,
    mode_changes,
    public,
    review,
    signup,
)

PAGE_MODULES: tuple[ModuleType, ...] = (
    public,
    signup,
    applicant,
    review,
    admin,
    gateways,
    explain,
    mode_changes,
)


def portal_router() -> APIRouter:
    """Every portal page in one router."""
    router = APIRouter(include_in_schema=False)
    for module in PAGE_MODULES:
        router.include_router(module.router)
    return router


router = portal_router()

__all__ = ["PAGE_MODULES", "portal_router", "router"]
