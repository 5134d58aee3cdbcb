"""The public lookup's answer as an RDAP ip network object (RFC 9083 section 5.4, reduced to
what the public may see): one place that renders it, for the `/api/v1/ip/{address}` route and
for the fast path that answers it from the in-memory index (vpnreg.web.lookup_fastpath)."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi.responses import JSONResponse

from vpnreg.registry.services.lookup import LookupResult
from vpnreg.web.schemas import LookupPublic

__all__ = [
    "MAX_ADDRESS",
    "RDAP_CONFORMANCE",
    "RDAP_MEDIA_TYPE",
    "RdapResponse",
    "rdap_answer",
    "rdap_error",
]

RDAP_MEDIA_TYPE = "application/rdap+json"
#: The longest address the lookup takes (the route's bound, and its fast path's).
MAX_ADDRESS = 64
#: rdap_level_0 (RFC 9083), cidr0 (the NRO RDAP CIDR extension, which defines "cidr0_cidrs"),
#: and our own extension for the registry's members.
RDAP_CONFORMANCE = ["rdap_level_0", "cidr0", "vpnreg"]


class RdapResponse(JSONResponse):
    media_type = RDAP_MEDIA_TYPE


def rdap_error(status: int, title: str, description: str, **extra: Any) -> JSONResponse:
    body = {
        "rdapConformance": RDAP_CONFORMANCE,
        "errorCode": status,
        "title": title,
        "description": [description],
        **extra,
    }
    return RdapResponse(body, status_code=status)


def rdap_answer(result: LookupResult) -> JSONResponse:
    """200 with the network covering the address, or 404 "Not registered". It names neither
    the organisation nor the subscriber."""
    if not result.registered or result.prefix is None:
        return rdap_error(
            404,
            "Not registered",
            f"no registration covers {result.ip}",
            registered=False,
            ip=result.ip,
        )
    network = ipaddress.ip_network(result.prefix)
    version = "v4" if network.version == 4 else "v6"
    cidr: dict[str, Any] = {f"{version}prefix": str(network.network_address)}
    cidr["length"] = network.prefixlen
    body = {
        "rdapConformance": RDAP_CONFORMANCE,
        "objectClassName": "ip network",
        "startAddress": str(network.network_address),
        "endAddress": str(network.broadcast_address),
        "ipVersion": version,
        "cidr0_cidrs": [cidr],
        "status": ["active"],
        "registered": True,
        "vpnreg_category": result.category,
        "vpnreg_validUntil": result.valid_until.isoformat() if result.valid_until else None,
        "vpnreg_query": result.ip,
    }
    public = LookupPublic.of(result)
    if public.binding is not None:
        body["binding"] = public.binding.model_dump(mode="json")
    return RdapResponse(body)
