"""JSON-ready pictures of registry objects for the audit log's before/after."""

from __future__ import annotations

from typing import Any

from vpnreg.registry.models import ISP, Application, Organisation, SectorBody, User


def application_snapshot(app: Application) -> dict[str, Any]:
    return {
        "id": app.id,
        "tracking_number": app.tracking_number,
        "organisation_id": app.organisation_id,
        "isp_id": app.isp_id,
        "category": app.category,
        "state": app.state,
        "version": app.version,
        "valid_from": app.valid_from.isoformat() if app.valid_from else None,
        "valid_until": app.valid_until.isoformat() if app.valid_until else None,
        "renews_id": app.renews_id,
        "rejected_from": app.rejected_from,
        "prefixes": [
            {"prefix": p.prefix, "peers": [peer.peer for peer in p.peers]} for p in app.prefixes
        ],
        **_binding_scope(app),
    }


def _binding_scope(app: Application) -> dict[str, Any]:
    """Subscriber binding and protocol scope, only where set: a prefix-bound application of any
    protocol is recorded exactly as before issue 17."""
    scope: dict[str, Any] = {}
    if app.bound_to == "subscriber":
        scope["bound_to"] = app.bound_to
        scope["subscriber_id"] = app.subscriber_id
    if app.protocols:
        scope["protocols"] = list(app.protocols)
    return scope


def organisation_snapshot(org: Organisation) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "category": org.category,
        "registration_number": org.registration_number,
        # Neither the ID number nor its keyed hash goes into the log; the last digits suffice.
        "national_id_last4": org.national_id_last4,
    }


def isp_snapshot(isp: ISP) -> dict[str, Any]:
    return {"id": isp.id, "name": isp.name}


def sector_body_snapshot(body: SectorBody) -> dict[str, Any]:
    return {"id": body.id, "name": body.name, "categories": list(body.categories)}


def user_snapshot(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "organisation_id": user.organisation_id,
        "isp_id": user.isp_id,
        "sector_body_id": user.sector_body_id,
        "active": user.active,
    }
