"""Storing a gateway report straight into a portal test app's registry."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi.testclient import TestClient

from vpnreg.core.gateway_report import CountKey, FeedApplied, Report
from vpnreg.registry.services.gateway_reports import store_report


def send(
    client: TestClient,
    gateway_id: str,
    when: dt.datetime,
    serial: int,
    counts: tuple[tuple[CountKey, int], ...] | None = None,
) -> None:
    hour = when.replace(minute=0, second=0, microsecond=0)
    report = Report(
        report_id=uuid.uuid4().hex,
        gateway_id=gateway_id,
        created=when,
        mode="nftables",
        feed=FeedApplied("a" * 32, serial, "b" * 64),
        counts=counts or ((CountKey(hour, "wireguard", "registered", registration_id=3), 5),),
    )
    app = client.app
    with app.state.database.session() as session:  # type: ignore[attr-defined]
        assert store_report(session, report=report, token_name="gw", now=when)
