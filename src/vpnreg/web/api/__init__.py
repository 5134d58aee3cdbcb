"""The JSON API under /api/v1: one router made of the resource routers."""

from __future__ import annotations

from fastapi import APIRouter

from vpnreg.web.api import applications, bindings, directory, gateways, records

router = APIRouter(prefix="/api/v1")
router.include_router(applications.router)
router.include_router(bindings.router)
router.include_router(directory.router)
router.include_router(gateways.router)
router.include_router(records.router)
