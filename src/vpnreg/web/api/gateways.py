"""/api/v1/gateway-reports and /api/v1/gateways: what gateways report, and how they stand.

A gateway (a gateway token, nothing else) POSTs one report every few minutes: 201 when stored,
200 when that report id was stored before (nothing is stored twice), 422 problem+json for a
malformed report (nothing stored). The regulator and the admin (and the auditor, who reads
every GET) list the gateways with their last report, applied serial, lag and flags (ADR 0010,
docs/gateway.md "Reports").
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from vpnreg.core.gateway_report import MAX_ROWS, CountKey, FeedApplied, Report
from vpnreg.registry.services.gateway_reports import gateway_list, store_report
from vpnreg.web.auth import AppClock, CurrentCaller, DbSession
from vpnreg.web.policy import GATEWAY, OVERSIGHT, allow, only

router = APIRouter(tags=["gateways"])

_MAX_DB_INT = 2**63 - 1
_StrictId = Annotated[int, Field(strict=True, ge=1, le=_MAX_DB_INT)]


def _rfc3339_text(value: object) -> object:
    # pydantic would take a number as Unix time; the document says an RFC 3339 string
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


_Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedAppliedIn(_Strict):
    session_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="The feed session")
    serial: int = Field(strict=True, ge=0, le=_MAX_DB_INT, description="The serial applied")
    set_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="The applied set's hash")


class CountIn(_Strict):
    hour: _Time = Field(description="The UTC hour counted (on the hour)")
    protocol: str = Field(max_length=16, examples=["wireguard"])
    verdict: str = Field(max_length=16, examples=["unregistered"])
    registration_id: _StrictId | None = None
    prefix: str | None = Field(
        default=None,
        max_length=64,
        description="For unregistered traffic: the domestic /24 (IPv4) or /48 (IPv6)",
    )
    flows: int = Field(strict=True, ge=1, le=_MAX_DB_INT)


class GatewayReportIn(_Strict):
    report_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="Unique per report; a resend")
    gateway_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,100}$", examples=["gw-ams-1"])
    created: _Time
    mode: Literal["dry-run", "nftables"]
    feed: FeedAppliedIn | None = Field(description="The feed state applied; null: none held")
    counts: list[CountIn] = Field(max_length=MAX_ROWS)

    def to_report(self) -> Report:
        feed = self.feed
        return Report(
            report_id=self.report_id,
            gateway_id=self.gateway_id,
            created=self.created,
            mode=self.mode,
            feed=None if feed is None else FeedApplied(feed.session_id, feed.serial, feed.set_hash),
            counts=tuple(
                (CountKey(c.hour, c.protocol, c.verdict, c.registration_id, c.prefix), c.flows)
                for c in self.counts
            ),
        )


class ReportStored(BaseModel):
    status: Literal["stored", "duplicate"]
    report_id: str


class GatewayPublic(BaseModel):
    gateway_id: str
    last_report_at: dt.datetime
    mode: str
    feed_session: str | None
    applied_serial: int | None
    set_hash: str | None
    lag: int | None = Field(description="Serials behind the registry's current one")
    stale: bool = Field(description="No report for 3 report intervals")
    hash_mismatch: bool | None = Field(
        description="The set hash differs from the registry's for that serial (null: unknown)"
    )


@router.post(
    "/gateway-reports",
    dependencies=[allow(only(GATEWAY))],
    status_code=201,
    response_model=ReportStored,
    summary="A gateway's report: its feed state and hourly aggregate counts",
    responses={
        200: {"model": ReportStored, "description": "This report id was stored before"},
    },
)
def post_gateway_report(
    body: GatewayReportIn,
    response: Response,
    db: DbSession,
    caller: CurrentCaller,
    clock: AppClock,
) -> ReportStored:
    stored = store_report(db, report=body.to_report(), token_name=caller.name, now=clock.now())
    if not stored:
        response.status_code = 200
    return ReportStored(status="stored" if stored else "duplicate", report_id=body.report_id)


@router.get(
    "/gateways",
    # the oversight roles: the regulator and the admin run gateways, the auditor reads all
    dependencies=[allow(OVERSIGHT)],
    response_model=list[GatewayPublic],
    summary="Every gateway's last report, applied serial, lag and flags",
)
def list_gateways(db: DbSession, clock: AppClock) -> list[GatewayPublic]:
    states = gateway_list(db, now=clock.now())
    return [GatewayPublic.model_validate(s, from_attributes=True) for s in states]
