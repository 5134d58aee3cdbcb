"""The JSON API under /api/v1: one router made of the resource routers, and their policy."""

from __future__ import annotations

from fastapi import APIRouter

from vpnreg.web.api import applications, directory, records
from vpnreg.web.policy import merge_policies

router = APIRouter(prefix="/api/v1")
router.include_router(applications.router)
router.include_router(directory.router)
router.include_router(records.router)

POLICY = merge_policies([applications.POLICY, directory.POLICY, records.POLICY])
