"""`vpnreg feed export` lists a subscriber-bound registration's live bindings like prefixes, in
every format (docs/exporters.md), with the port range where the format can say it; an imported
legacy CSV row stays prefix-bound, so a binding of its ISP account id adds nothing (issue 17).
Real console script, real SQLite registry, bindings reported through
services.bindings.report_events."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.cli.conftest import Run
from tests.cli.test_bindings import APPLICATION, _bind
from vpnreg.core.bindings import BindingEvent
from vpnreg.core.exporters import ExportFormat
from vpnreg.registry.models import Application
from vpnreg.registry.services.unit_of_work import Database

pytestmark = pytest.mark.slow

LEGACY = """\
organisation,category,isp,subscriber_id,prefix,valid_until
Gamma Calls,call_centre,Indus Fibre,ACC-77,192.0.2.0/28,2099-12-31
"""


def _export(run: Run, tmp_path: Path, fmt: ExportFormat) -> str:
    out = tmp_path / f"allow.{fmt.value}"
    result = run("feed", "export", "--format", fmt.value, "--out", str(out))
    assert result.code == 0, result.err
    return out.read_text()


def test_every_format_lists_live_bindings_and_legacy_rows_stay_prefix_bound(
    registry: Run, tmp_path: Path
) -> None:
    path = tmp_path / "application.yaml"
    path.write_text(APPLICATION)
    applied = registry("apply", str(path), "--actor", "bob")
    assert applied.code == 0, applied.err
    tracking = applied.out.split()[0]
    assert registry("review", "verify", tracking, "--actor", "isp1").code == 0
    assert registry("review", "approve", tracking, "--actor", "reg1").code == 0
    (tmp_path / "legacy.csv").write_text(LEGACY)
    imported = registry("import", "legacy.csv")
    assert imported.code == 0, imported.err
    assert (
        _bind(
            tmp_path,
            BindingEvent("start", "SUB-123", "s1", "198.51.100.7", (1024, 2047)),
            BindingEvent("start", "SUB-123", "s2", "2001:db8:5::/64", None),
            # The imported row's ISP account id: stored for the history, in no feed.
            BindingEvent("start", "ACC-77", "s3", "203.0.113.9", None),
            BindingEvent("start", "SUB-123", "s4", "198.51.100.99", None),
            BindingEvent("stop", "SUB-123", "s4", "198.51.100.99", None),
        )
        == ["stored"] * 5
    )

    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        with database.session() as session:
            legacy = session.scalars(
                select(Application).where(Application.subscriber_id == "ACC-77")
            ).one()
            assert (legacy.bound_to, [p.prefix for p in legacy.prefixes]) == (
                "prefixes",
                ["192.0.2.0/28"],
            )
            bound = session.scalars(
                select(Application).where(Application.tracking_number == tracking)
            ).one()
            bound_id, legacy_id = bound.id, legacy.id
    finally:
        database.dispose()

    entries = json.loads(_export(registry, tmp_path, ExportFormat.JSON))["entries"]
    assert sorted((e["prefix"], e["registration_id"], e["ports"], e["protocols"])
                  for e in entries) == [
        ("192.0.2.0/28", legacy_id, [0, 65535], []),
        ("198.51.100.7/32", bound_id, [1024, 2047], ["openvpn", "wireguard"]),
        ("2001:db8:5::/64", bound_id, [0, 65535], ["openvpn", "wireguard"]),
    ]  # fmt: skip
    txt = _export(registry, tmp_path, ExportFormat.TXT).split()
    assert txt == ["192.0.2.0/28", "198.51.100.7/32", "2001:db8:5::/64"]
    nft = _export(registry, tmp_path, ExportFormat.NFT)
    assert "198.51.100.7/32 . 1024-2047" in nft  # the port set says the range
    # The generation time in whole seconds, UTC, as docs/exporters.md says.
    assert re.search(r"^# generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ;", nft, re.M)
    assert "2001:db8:5::/64" in nft and "192.0.2.0/28" in nft
    ipset = _export(registry, tmp_path, ExportFormat.IPSET)
    suricata = _export(registry, tmp_path, ExportFormat.SURICATA_IPREP)
    for text in (ipset, suricata):
        assert "198.51.100.7" in text and "2001:db8:5::/64" in text and "192.0.2.0/28" in text
    zeek = _export(registry, tmp_path, ExportFormat.ZEEK_INTEL)
    line = next(x for x in zeek.splitlines() if x.startswith("198.51.100.7"))
    assert "ports 1024-2047" in line and "protocols openvpn wireguard" in line
    assert "2001:db8:5::/64" in zeek and "192.0.2.0/28" in zeek
    everything = nft + ipset + suricata + zeek + " ".join(txt) + json.dumps(entries)
    assert "203.0.113.9" not in everything  # the legacy row's account id binds nothing
    assert "198.51.100.99" not in everything  # a stopped binding is gone
