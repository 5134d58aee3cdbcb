"""`vpnreg gateway --pcap` as a subprocess over corpus captures: exits 0 at the end of the file
with a summary line, and writes a verdict line per VPN flow."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from tests.agent_gateway.feeds import Signer, entry
from tests.console import VPNREG

#: vpnreg gateway as a process over corpus captures.
pytestmark = pytest.mark.slow


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VPNREG), "gateway", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_pcap_run_dry_run(tmp_path: Path, shared_dir: Path) -> None:
    signer = Signer(tmp_path)
    feed = tmp_path / "feed.json"
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    feed.write_bytes(signer.snapshot([entry("192.168.12.0/24", 7)], serial=3, created=created))
    corpus = shared_dir / "corpus" / "ndpi"
    out = tmp_path / "out.jsonl"
    done = gateway(
        "--pcap", str(corpus / "openvpn.pcap"), "--feed", str(feed),
        "--trust", str(signer.public_path), "--state-dir", str(tmp_path / "state"),
        "--home", "192.168.0.0/16", "--home", "10.0.0.0/8", "--enforce", "dry-run",
        "--verdicts", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("vpnreg gateway: ") and "openvpn.pcap" in summary
    assert "feed serial 3" in summary and "2 registered" in summary
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    # VPN flows, and the unconfirmed ones (nDPI's OpenVPN label on flows that carry one
    # direction only): recorded, never blocked
    unconfirmed = [x for x in lines if x["verdict"] == "unconfirmed"]
    assert {(x["vpn"], x["action"], x["classification_rule"]) for x in unconfirmed} == {
        (False, "pass", "ndpi-unconfirmed")
    }
    lines = [x for x in lines if x["verdict"] != "unconfirmed"]
    assert lines and all(line["vpn"] is True for line in lines)
    assert {line["feed_serial"] for line in lines} == {3}
    registered = [x for x in lines if x["verdict"] == "registered"]
    assert {x["registration_id"] for x in registered} == {7}
    assert all(x["src_ip"].startswith("192.168.12.") for x in registered)
    unregistered = [x for x in lines if x["verdict"] == "unregistered"]
    assert unregistered and {x["action"] for x in unregistered} == {"report"}
    assert f"{len(lines)} VPN" in summary and f"{len(unconfirmed)} unconfirmed" in summary


def test_pcap_run_refuses_bad_key_and_damaged_capture(tmp_path: Path, shared_dir: Path) -> None:
    (tmp_path / "bad.pub").write_text("not a key\n")
    args = ["--feed", str(tmp_path / "f.json"), "--state-dir", str(tmp_path / "s"),
            "--home", "10.0.0.0/8", "--enforce", "dry-run"]  # fmt: skip
    pcap = shared_dir / "corpus" / "ndpi" / "esp.pcapng"
    done = gateway("--pcap", str(pcap), "--trust", str(tmp_path / "bad.pub"), *args)
    assert done.returncode == 1 and "trusted keys" in done.stderr
    signer = Signer(tmp_path)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(pcap.read_bytes()[:-10])
    done = gateway("--pcap", str(cut), "--trust", str(signer.public_path), *args)
    assert done.returncode == 1 and "cut.pcap" in done.stderr
    done = gateway("--trust", str(signer.public_path), *args)
    assert done.returncode == 2 and "exactly one of --pcap" in done.stderr


def test_pcap_run_on_a_static_feed_directory(tmp_path: Path, shared_dir: Path) -> None:
    from vpnreg.core.feed import FeedHistory
    from vpnreg.registry.feed_static import write_static_feed

    signer = Signer(tmp_path)
    now = dt.datetime.now(dt.UTC)
    history = FeedHistory.new(
        session_id=signer.session, now=now, entries=[entry("192.168.12.0/24", 7)]
    )
    write_static_feed(tmp_path / "static", history, key=signer.private, now=now)
    out = tmp_path / "out.jsonl"
    done = gateway(
        "--pcap", str(shared_dir / "corpus" / "ndpi" / "openvpn.pcap"),
        "--feed", str(tmp_path / "static"), "--trust", str(signer.public_path),
        "--state-dir", str(tmp_path / "state"), "--home", "192.168.0.0/16",
        "--enforce", "dry-run", "--verdicts", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "feed serial 1" in done.stderr.strip().splitlines()[-1]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert {x["registration_id"] for x in lines if x["verdict"] == "registered"} == {7}
