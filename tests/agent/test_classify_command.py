"""The `vpnreg classify` command: formats, and one error line per bad file without stopping."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.console import VPNREG
from vpnreg.cli.classify import register

REQUIRED = {
    "file", "src_ip", "src_port", "dst_ip", "dst_port", "ip_protocol", "application", "vpn",
    "vpn_protocol", "basis",
}  # fmt: skip


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root with several commands (so `classify` is a sub-command)."""

    register(root)
    return root


@pytest.fixture
def corpus(shared_dir: Path) -> Path:
    return shared_dir / "corpus" / "ndpi"


def test_jsonl_one_object_per_flow(app: typer.Typer, corpus: Path) -> None:
    result = CliRunner().invoke(app, ["classify", "--format", "jsonl", str(corpus / "esp.pcapng")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2
    assert all(row.keys() >= REQUIRED for row in rows)
    assert {(r["ip_protocol"], r["vpn"], r["vpn_protocol"]) for r in rows} == {
        (17, True, "ipsec"),
        (50, True, "ipsec"),
    }
    # The classifier's rule has its own name; `rule` is left to the verdict log's policy rule.
    assert {r["classification_rule"] for r in rows} == {"ike-header", "ip-esp-ah"}
    assert not any("rule" in r or "policy_rule" in r for r in rows)


def test_table_format(app: typer.Typer, corpus: Path) -> None:
    result = CliRunner().invoke(app, ["classify", str(corpus / "pptp.pcap")])
    assert result.exit_code == 0, result.output
    assert "pptp.pcap" in result.stdout
    assert "1723" in result.stdout
    assert "nDPI DPI label PPTP" in result.stdout


def test_bad_files_get_one_line_each_and_the_rest_are_processed(
    app: typer.Typer, corpus: Path, tmp_path: Path
) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("not a capture at all\n")
    truncated = tmp_path / "cut.pcap"
    truncated.write_bytes((corpus / "pptp.pcap").read_bytes()[:-100])
    result = CliRunner().invoke(
        app,
        ["classify", "--format", "jsonl", str(text), str(corpus / "pptp.pcap"), str(truncated)],
    )
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert str(text) in errors[0] and "not a pcap" in errors[0]
    assert str(truncated) in errors[1] and "truncated" in errors[1]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(corpus / "pptp.pcap")]


def test_unknown_format_is_a_usage_error(app: typer.Typer, corpus: Path) -> None:
    result = CliRunner().invoke(app, ["classify", "--format", "xml", str(corpus / "pptp.pcap")])
    assert result.exit_code == 2


def test_real_process(corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a\xff\xff")
    proc = subprocess.run(
        [str(VPNREG), "classify", "--format", "jsonl", str(bad),
         str(corpus / "wireguard.pcap")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert str(bad) in proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows
    assert {r["vpn_protocol"] for r in rows} == {"wireguard"}
