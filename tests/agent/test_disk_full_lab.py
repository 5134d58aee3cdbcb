"""A full disk under the agent (a small tmpfs; root, hence `_lab.py`): the verdict log and the
feed copy. The last good copy survives, the error is clear, and the agent keeps enforcing."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
from pathlib import Path

import pytest

from tests.agent_feed.fakefeed import (
    NEW_ENTRY,
    TOKEN,
    TRUSTED,
    FakeFeedServer,
    later,
    new_history,
)
from tests.agent_gateway.feeds import Signer, entry
from tests.console import VPNREG
from tests.fixtures.disk import fill, small_disk
from vpnreg.agent.feedclient import FeedClient, PollStatus, Timers
from vpnreg.agent.feedstore import COMPACT_FILE, SNAPSHOT_FILE, STATE_FILE
from vpnreg.agent.verdictlog import VerdictLog
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EnforcementMode


def lines_of(path: Path) -> list[dict[str, object]]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a half-written line"
    return [json.loads(x) for x in text.splitlines()]


def test_the_verdict_log_on_a_full_disk_loses_lines_not_the_agent(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "disk", size_kib=64) as disk:
        log = VerdictLog(disk / "verdicts.jsonl", clock=clock)
        log.write({"n": 0, "pad": "x" * 200})
        filler = fill(disk)
        with caplog.at_level(logging.WARNING, logger="vpnreg.agent.verdictlog"):
            # The file's last page still has room for a few lines; then the disk is full.
            for n in range(1, 41):
                log.write({"n": n, "pad": "x" * 200})  # never raises
            kept = [x["n"] for x in lines_of(log.path)]  # whole lines only: partial cut back
            assert kept == list(range(len(kept))) and 0 < len(kept) < 41
            assert log.unrecorded == 41 - len(kept)
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
            assert "enforcement goes on" in errors[0].getMessage()
            filler.unlink()
            log.write({"n": 41})
        assert log.unrecorded == 0
        assert [x["n"] for x in lines_of(log.path)] == [*kept, 41]
        assert f"{41 - len(kept)} verdicts were not recorded" in caplog.text
        log.close()


def test_the_gateway_enforces_through_a_full_verdict_disk(tmp_path: Path, shared_dir: Path) -> None:
    signer = Signer(tmp_path)
    feed = tmp_path / "feed.json"
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    feed.write_bytes(signer.snapshot([entry("192.168.12.0/24", 7)], serial=3, created=created))
    with small_disk(tmp_path / "disk", size_kib=64) as disk:
        fill(disk)
        done = subprocess.run(
            [str(VPNREG), "gateway", "--pcap", str(shared_dir / "corpus" / "ndpi" / "openvpn.pcap"),
             "--feed", str(feed), "--trust", str(signer.public_path),
             "--state-dir", str(tmp_path / "state"), "--home", "192.168.0.0/16",
             "--enforce", "dry-run", "--verdicts", str(disk / "verdicts.jsonl")],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert (disk / "verdicts.jsonl").read_text() == ""
    # Before, the first verdict that could not be written ended the run; now every flow is
    # decided (and in dry-run reported), and the summary counts them.
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    errors = [x for x in done.stderr.splitlines() if "ERROR" in x]
    assert len(errors) == 1 and "verdict log" in errors[0] and "No space left" in errors[0]
    summary = done.stderr.strip().splitlines()[-1]
    assert "feed serial 3" in summary and " VPN" in summary and "0 VPN" not in summary


def test_the_feed_copy_on_a_full_disk_keeps_the_last_good_copy(
    tmp_path: Path, clock: FrozenClock
) -> None:
    server = FakeFeedServer(history=new_history(clock.now()), clock=clock)

    def client(state: Path) -> FeedClient:
        return FeedClient(
            source=server.base, trusted=TRUSTED, state_dir=state, clock=clock, token=TOKEN,
            transport=server.transport(), timers=Timers(refresh_s=60, retry_s=10, expire_s=3600),
        )  # fmt: skip

    with small_disk(tmp_path / "disk", size_kib=64) as disk:
        state = disk / "state"
        held = client(state)
        assert held.poll().status is PollStatus.UPDATED
        copy = (state / SNAPSHOT_FILE).read_bytes()
        compact = (state / COMPACT_FILE).read_bytes()
        floor = (state / STATE_FILE).read_bytes()
        filler = fill(disk)
        server.history.commit([NEW_ENTRY], EnforcementMode.enforce_all(), later(clock))
        result = held.poll()
        assert result.status is PollStatus.UNREACHABLE and result.error_kind == "io"
        assert result.error is not None and "No space left on device" in result.error
        assert str(state) in result.error and "\n" not in result.error
        # Still enforcing serial 1 in memory, and serial 1 whole on disk, no temporaries.
        assert held.state is not None and held.state.serial == 1
        assert (state / SNAPSHOT_FILE).read_bytes() == copy
        assert (state / STATE_FILE).read_bytes() == floor
        assert (state / COMPACT_FILE).read_bytes() == compact
        assert sorted(p.name for p in state.iterdir()) == sorted(
            [SNAPSHOT_FILE, COMPACT_FILE, STATE_FILE]
        )
        # A restart on the full disk starts from the last good copy.
        restarted = client(state)
        restarted.load()
        assert restarted.state is not None and restarted.state.serial == 1
        restarted.close()
        filler.unlink()
        assert held.poll().status is PollStatus.UPDATED
        assert held.state is not None and held.state.serial == 2
        held.close()
