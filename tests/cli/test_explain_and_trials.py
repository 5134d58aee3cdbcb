"""`vpnreg explain` and `vpnreg feed mode --reason --until` with the revert by `feed publish`,
through the real console script (which reads the system clock)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

from sqlalchemy import select

from tests.cli.conftest import Run
from tests.registry.conftest import make_config
from vpnreg.core.gateway_report import CountKey, FeedApplied, Report, hour_of
from vpnreg.registry import services
from vpnreg.registry.models import AuditLogRow, User
from vpnreg.registry.services.gateway_reports import store_report
from vpnreg.registry.services.mode_changes import list_changes
from vpnreg.registry.services.unit_of_work import Database

APPLICATION = """\
organisation: Beta Bank
isp: Indus Fibre
protocols: [wireguard]
prefixes:
  - prefix: 203.0.113.0/26
    peers: [198.51.100.0/24]
"""


def _database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'registry.db'}")


def test_explain_names_gateway_serial_rule_and_registration(registry: Run, tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(APPLICATION)
    applied = registry("apply", str(tmp_path / "app.yaml"), "--actor", "bob")
    assert applied.code == 0, applied.err
    tracking = applied.out.split()[0]
    assert registry("review", "verify", tracking, "--actor", "isp1").code == 0
    assert registry("review", "approve", tracking, "--actor", "reg1").code == 0
    assert registry("feed", "publish").code == 0
    now = dt.datetime.now(dt.UTC)
    database = _database(tmp_path)
    try:
        with database.session() as session:
            feed = services.current_feed(session)
            assert feed is not None
            app_id = session.scalar(
                select(AuditLogRow.object_id).where(AuditLogRow.action == "approve")
            )
            counts = (
                (CountKey(hour_of(now), "openvpn", "unregistered",
                          registration_id=int(str(app_id))), 4),
            )  # fmt: skip
            applied_feed = FeedApplied(feed.session_id, feed.serial, feed.entries.set_hash())
            report = Report(uuid.uuid4().hex, "gw-karachi-2", now, "nftables", applied_feed, counts)
            assert store_report(session, report=report, token_name="gw", now=now)
    finally:
        database.dispose()

    asked = registry("explain", "203.0.113.9", "--actor", "reg1", "--json")
    assert asked.code == 0, asked.err
    answer = json.loads(asked.out)
    assert "registered at " in answer["registry_answer"] and tracking in answer["registry_answer"]
    [row] = answer["rows"]
    assert (row["gateway_id"], row["verdict"], row["rule"], row["tracking_number"]) == (
        "gw-karachi-2", "unregistered", "protocol-not-registered", tracking
    )  # fmt: skip
    assert (row["feed_serial"], row["serial_status"]) == (1, "current")
    text = registry("explain", "203.0.113.9", "--actor", "reg1", "--hours", "2").out
    assert "gw-karachi-2" in text and "protocol-not-registered" in text and "serial 1" in text

    empty = registry("explain", "203.0.113.9", "--actor", "reg1", "--at", "2026-01-01T00:00:00Z")
    assert empty.code == 0 and "no reports mention this address" in empty.out
    refused = registry("explain", "203.0.113.9", "--actor", "alice")
    assert refused.code == 1 and len(refused.err_lines) == 1
    wide = registry("explain", "10.0.0.0/8", "--actor", "reg1")
    assert wide.code == 1 and "at most /16" in wide.err
    naive = registry("explain", "203.0.113.9", "--actor", "reg1", "--at", "2026-01-01T00:00")
    assert naive.code == 2 and "offset" in naive.err
    assert registry("audit", "verify").code == 0


def test_a_trial_is_announced_and_the_next_publish_after_its_end_reverts_it(
    registry: Run, tmp_path: Path
) -> None:
    assert registry("feed", "publish").code == 0
    past = registry("feed", "mode", "dry-run", "--actor", "reg1", "--reason", "x",
                    "--until", "2020-01-01T00:00:00Z")  # fmt: skip
    assert past.code == 1 and "until must be in the future" in past.err
    trial = registry("feed", "mode", "dry-run", "--protocol", "wireguard", "--actor", "reg1",
                     "--reason", "WireGuard classifier trial", "--until",
                     "2100-01-01T00:00:00Z")  # fmt: skip
    assert trial.code == 0, trial.err
    assert "wireguard=dry-run" in trial.out
    assert "trial ended" not in registry("feed", "publish").out

    # a trial made two hours ago (by the service: the console script reads the real clock)
    # that should have ended an hour ago
    now = dt.datetime.now(dt.UTC)
    database = _database(tmp_path)
    try:
        with database.session() as session:
            reg2 = session.scalars(select(User).where(User.username == "reg2")).one()
            services.set_mode(session, mode="dry-run", protocol="openvpn", reason="short trial",
                              until=now - dt.timedelta(hours=1), actor=reg2,
                              now=now - dt.timedelta(hours=2), config=make_config())  # fmt: skip
    finally:
        database.dispose()
    published = registry("feed", "publish")
    assert published.code == 0, published.err
    assert "trial ended:" in published.out and "openvpn=enforce" in published.out
    assert "wireguard=dry-run" in published.out  # the other trial runs on

    database = _database(tmp_path)
    try:
        with database.session() as session:
            changes = list_changes(session)
    finally:
        database.dispose()
    assert [(c.protocol, str(c.to_mode), c.actor_role, c.ended_by) for c in changes] == [
        ("openvpn", "enforce", "system", None),
        ("openvpn", "dry-run", "regulator", "planned end"),
        ("wireguard", "dry-run", "regulator", None),
    ]
    assert registry("audit", "verify").code == 0
