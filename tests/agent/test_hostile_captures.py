"""Every kind of broken or hostile capture given to `vpnreg classify` and `vpnreg gateway --pcap`:
one line on stderr naming the file, no traceback, exit 1, and the sound files of the same
`classify` command still classified."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.agent.badcaptures import BAD_CAPTURES, BadCapture, without_file_override
from tests.agent_gateway.feeds import Signer, entry
from tests.console import VPNREG


def bad_files(where: Path) -> list[tuple[Path, BadCapture]]:
    made = []
    for bad in BAD_CAPTURES:
        path = where / bad.name
        bad.write(path)
        made.append((path, bad))
    return made


def test_classify_reports_each_bad_file_in_one_line_and_classifies_the_rest(
    tmp_path: Path, shared_dir: Path
) -> None:
    good = tmp_path / "wireguard.pcap"
    shutil.copyfile(shared_dir / "corpus" / "ndpi" / "wireguard.pcap", good)
    good.chmod(0o644)
    bad = bad_files(tmp_path)
    # The sound capture sits in the middle: files after a bad one are still read.
    args = [str(p) for p, _ in bad[:5]] + [str(good)] + [str(p) for p, _ in bad[5:]]
    proc = subprocess.run(
        [str(VPNREG), "classify", "--format", "jsonl", *args],
        capture_output=True, text=True, timeout=120, check=False, preexec_fn=without_file_override,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == len(bad), proc.stderr
    for line, (path, kind) in zip(lines, bad, strict=True):
        assert line.startswith(f"vpnreg: {path}: "), line
        assert kind.says in line, line
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows and {r["file"] for r in rows} == {str(good)}
    assert {r["vpn_protocol"] for r in rows} == {"wireguard"}


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("feed")
    signer = Signer(where)
    snapshot = where / "feed.json"
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    snapshot.write_bytes(signer.snapshot([entry("192.0.2.0/24", 7)], serial=1, created=created))
    return snapshot, signer.public_path


@pytest.mark.slow  # a gateway process per kind, as in tests/agent_gateway/test_gateway_pcap.py
@pytest.mark.parametrize("kind", BAD_CAPTURES, ids=[b.name for b in BAD_CAPTURES])
def test_gateway_refuses_a_bad_capture_in_one_line(
    kind: BadCapture, tmp_path: Path, feed: tuple[Path, Path]
) -> None:
    snapshot, trust = feed
    capture = tmp_path / kind.name
    kind.write(capture)
    state = tmp_path / "state"
    args = [
        "gateway", "--pcap", str(capture), "--feed", str(snapshot), "--trust", str(trust),
        "--state-dir", str(state), "--home", "10.0.0.0/8", "--enforce", "dry-run",
    ]  # fmt: skip
    proc = subprocess.run(
        [str(VPNREG), *args], capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=without_file_override,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vpnreg: ")]
    assert errors == [line for line in proc.stderr.splitlines() if "INFO" not in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"vpnreg: {capture}: ") and kind.says in errors[0]
