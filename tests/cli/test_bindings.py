"""Subscriber-bound registrations through the real console script: `vpnreg apply` with
`subscriber_id:`, `lookup --port/--at`, `bindings history`, and `maintenance`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.cli.conftest import Run
from tests.registry.conftest import make_config
from vpnreg.core.bindings import BindingEvent
from vpnreg.registry.models import ISP
from vpnreg.registry.services.bindings import report_events
from vpnreg.registry.services.unit_of_work import Database

#: Several real vpnreg runs on the CLI-built template registry.
pytestmark = pytest.mark.slow

APPLICATION = """\
organisation: Beta Bank
isp: Indus Fibre
subscriber_id: SUB-123
protocols: [wireguard, openvpn]
"""


def _bind(tmp_path: Path, *events: BindingEvent) -> list[str]:
    """Report `events` for Indus Fibre straight through the service, at the real time (the
    console script reads the system clock)."""
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        with database.session() as session:
            isp = session.scalar(select(ISP.id).where(ISP.name == "Indus Fibre"))
            assert isp is not None
            results = report_events(
                session,
                actor="test:isp",
                isp_id=isp,
                events=list(events),
                now=dt.datetime.now(dt.UTC),
                config=make_config(),
            )
            return [r.status for r in results]
    finally:
        database.dispose()


def test_a_subscriber_bound_registration_from_yaml_to_lookup_and_history(
    registry: Run, tmp_path: Path
) -> None:
    path = tmp_path / "application.yaml"
    path.write_text(APPLICATION)
    applied = registry("apply", str(path), "--actor", "bob")
    assert applied.code == 0, applied.err
    tracking = applied.out.split()[0]
    assert registry("review", "verify", tracking, "--actor", "isp1").code == 0
    approved = registry("review", "approve", tracking, "--actor", "reg1")
    assert approved.code == 0, approved.err
    assert "state active" in approved.out
    assert _bind(
        tmp_path, BindingEvent("start", "SUB-123", "s1", "198.51.100.7", (1024, 2047))
    ) == ["stored"]

    inside = json.loads(registry("lookup", "198.51.100.7", "--port", "1500", "--json").out)
    assert inside["registered"] is True
    assert inside["tracking_number"] == tracking
    assert inside["binding"]["ports"] == [1024, 2047]
    assert "SUB-123" not in json.dumps(inside)
    outside = json.loads(registry("lookup", "198.51.100.7", "--port", "80", "--json").out)
    assert outside["registered"] is False
    before = registry("lookup", "198.51.100.7", "--at", "2020-01-01T00:00:00Z", "--json")
    assert json.loads(before.out)["registered"] is False
    text = registry("lookup", "198.51.100.7", "--port", "2047").out
    assert "ports 1024-2047" in text and tracking in text
    naive = registry("lookup", "198.51.100.7", "--at", "2026-01-01T00:00:00")
    assert naive.code == 2 and "offset" in naive.err

    history = registry(
        "bindings", "history", "198.51.100.7",
        "--from", "2020-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z",
        "--actor", "reg1", "--json",
    )  # fmt: skip
    assert history.code == 0, history.err
    [row] = [json.loads(line) for line in history.out.splitlines()]
    assert (row["subscriber_id"], row["registration"], row["ports"], row["stopped"]) == (
        "SUB-123",
        tracking,
        [1024, 2047],
        False,
    )
    refused = registry(
        "bindings", "history", "198.51.100.7",
        "--from", "2020-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--actor", "isp1",
    )  # fmt: skip
    assert refused.code == 1 and len(refused.err_lines) == 1

    kept = registry("maintenance")
    assert kept.code == 0, kept.err
    assert "bindings: deleted 0" in kept.out
    gone = registry("maintenance", VPNREG_BINDING_RETENTION_DAYS="1")
    assert "deleted 0" in gone.out  # the binding is live: nothing of it has ended yet
    assert registry("audit", "verify").code == 0


def test_the_yaml_refuses_a_bad_subscriber_id_or_protocol(registry: Run, tmp_path: Path) -> None:
    path = tmp_path / "application.yaml"
    path.write_text(APPLICATION.replace("SUB-123", "'SUB 123'").replace("openvpn", "telnet"))
    result = registry("apply", str(path), "--actor", "bob")
    assert result.code == 1
    [line] = result.err_lines
    assert "subscriber_id:" in line and "protocols[1]:" in line
