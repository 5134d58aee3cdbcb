"""`vpnreg feed keygen` and `vpnreg feed pull`: CliRunner on a test app, and the real command."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from tests.agent_feed.fakefeed import KEY, SESSION, new_history, snapshot_bytes
from tests.console import VPNREG
from vpnreg.cli.feed_client import register
from vpnreg.cli.runtime import CliError
from vpnreg.core.feed import EnforcementMode, EntryTable, FeedHistory
from vpnreg.feedkeys import public_key_bytes

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    feed_app = typer.Typer()
    register(feed_app)
    root.add_typer(feed_app, name="feed")
    return root


@pytest.fixture
def trust(tmp_path: Path) -> Path:
    path = tmp_path / "feed.pub"
    path.write_bytes(public_key_bytes(KEY.public_key()))
    return path


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    # `feed pull` reads the real clock: sign around the current time.
    path = tmp_path / "feed.json"
    path.write_bytes(snapshot_bytes(new_history(NOW - dt.timedelta(minutes=5)), NOW))
    return path


def refusal(result: Result) -> str:
    """The CliError the command raised (vpnreg.cli.main prints it as one line, exit 1)."""
    assert isinstance(result.exception, CliError), result.output
    assert result.exception.code == 1
    message = str(result.exception)
    assert "\n" not in message
    return message


def pull(app: typer.Typer, feed: Path, trust: Path, state: Path) -> Result:
    return CliRunner().invoke(
        app,
        ["feed", "pull", "--feed", str(feed), "--trust", str(trust), "--state-dir", str(state)],
    )


def test_keygen_writes_the_pair_and_prints_the_key_id(app: typer.Typer, tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    result = CliRunner().invoke(app, ["feed", "keygen", "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    kid = result.stdout.strip()
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert stat.S_IMODE((directory / "feed.key").stat().st_mode) == 0o600
    again = CliRunner().invoke(app, ["feed", "keygen", "--dir", str(directory)])
    assert "refusing to overwrite" in refusal(again)


def test_pull_updates_then_is_unchanged(
    app: typer.Typer, feed: Path, trust: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = pull(app, feed, trust, state)
    assert first.exit_code == 0, first.output
    doc = json.loads(feed.read_bytes())
    assert first.stdout == (
        f"feed: session {doc['session_id']} serial 1, 3 entries, "
        f"set hash {doc['set_hash']} (updated)\n"
    )
    second = pull(app, feed, trust, state)
    assert second.exit_code == 0
    assert second.stdout.endswith("(unchanged)\n")


def test_pull_of_a_v1_feed_says_its_version_and_a_v3_feed_is_refused(
    app: typer.Typer, feed: Path, trust: Path, tmp_path: Path
) -> None:
    v1 = [
        {"prefix": "192.0.2.0/24", "peers": [], "registration_id": 1, "valid_until": "2027-01-31"}
    ]
    history = FeedHistory.new(
        session_id=SESSION, now=NOW - dt.timedelta(minutes=5),
        entries=EntryTable.from_json_list(v1, version=1), mode=EnforcementMode.enforce_all(),
    )  # fmt: skip
    feed.write_bytes(snapshot_bytes(history, NOW))
    state = tmp_path / "state"
    first = pull(app, feed, trust, state)
    assert first.exit_code == 0, first.output
    assert "1 entries of version 1 (read for one release)" in first.stdout
    doc = json.loads(snapshot_bytes(new_history(NOW - dt.timedelta(minutes=1)), NOW))
    doc["version"] = 3
    feed.write_text(json.dumps(doc))
    message = refusal(pull(app, feed, trust, state))
    assert "UnsupportedVersion: feed document version 3 is not supported" in message
    assert "keeping serial 1" in message


def test_pull_refuses_a_tampered_feed_and_keeps_the_held_copy(
    app: typer.Typer, feed: Path, trust: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert pull(app, feed, trust, state).exit_code == 0
    held = (state / "snapshot.json").read_bytes()
    doc = json.loads(feed.read_bytes())
    doc["entries"] = doc["entries"][1:]
    feed.write_text(json.dumps(doc))
    message = refusal(pull(app, feed, trust, state))
    assert "HashMismatch" in message and "keeping serial 1" in message
    assert (state / "snapshot.json").read_bytes() == held


def test_pull_with_a_missing_trust_file(app: typer.Typer, feed: Path, tmp_path: Path) -> None:
    message = refusal(pull(app, feed, tmp_path / "none.pub", tmp_path / "state"))
    assert "does not exist" in message


def test_pull_without_trust_is_a_usage_error(app: typer.Typer, feed: Path) -> None:
    result = CliRunner().invoke(app, ["feed", "pull", "--feed", str(feed)])
    assert result.exit_code == 2


def test_real_vpnreg_feed_pull_on_a_file(feed: Path, trust: Path, tmp_path: Path) -> None:
    """The installed command, in a subprocess: output line, refusal line and exit codes."""
    vpnreg = VPNREG
    args = [str(vpnreg), "feed", "pull", "--feed", str(feed), "--trust", str(trust)]
    args += ["--state-dir", str(tmp_path / "state")]
    env = {**os.environ, "VPNREG_FEED_TOKEN": ""}
    ok = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("feed: session ") and ok.stdout.endswith("(updated)\n")
    assert ok.stderr == ""
    # Same session and serial, signed as created earlier: a rollback.
    feed.write_bytes(snapshot_bytes(new_history(NOW - dt.timedelta(minutes=10)), NOW))
    bad = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 1
    assert bad.stdout == ""
    lines = bad.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vpnreg: refused feed document: Rollback")


# -- hostile input (issue 16) -----------------------------------------------------------------


def pull_with(app: typer.Typer, feed: Path, trust: Path, state: Path, *extra: str) -> Result:
    args = ["feed", "pull", "--feed", str(feed), "--trust", str(trust), "--state-dir", str(state)]
    return CliRunner().invoke(app, [*args, *extra])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b'{"serial":' + b"1" * 100_000 + b"}", "too many digits", id="huge-integer"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nests too deeply", id="deep-nesting"),
    ],
)
def test_pull_refuses_pathological_json(
    app: typer.Typer, feed: Path, trust: Path, tmp_path: Path, body: bytes, message: str
) -> None:
    state = tmp_path / "state"
    assert pull(app, feed, trust, state).exit_code == 0
    feed.write_bytes(body)
    refused = refusal(pull(app, feed, trust, state))
    assert "MalformedDocument" in refused and message in refused
    assert "keeping serial 1" in refused


def test_pull_refuses_a_feed_over_max_bytes(
    app: typer.Typer, feed: Path, trust: Path, tmp_path: Path
) -> None:
    size = feed.stat().st_size
    message = refusal(pull_with(app, feed, trust, tmp_path / "s", "--max-bytes", str(size - 1)))
    assert "DocumentTooLarge" in message and f"over the limit of {size - 1}" in message
    ok = pull_with(app, feed, trust, tmp_path / "s", "--max-bytes", str(size))
    assert ok.exit_code == 0, ok.output


def test_pull_repairs_a_corrupt_state_json_and_says_so(
    app: typer.Typer, feed: Path, trust: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert pull(app, feed, trust, state).exit_code == 0
    (state / "state.json").write_bytes(b"\x00\x00garbage")
    result = pull(app, feed, trust, state)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("feed: session ") and result.stdout.endswith("(unchanged)\n")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vpnreg: repaired feed state directory: ")
    assert "recovered serial 1" in lines[0]
    # Repaired for good: the next pull has nothing to say.
    again = pull(app, feed, trust, state)
    assert again.exit_code == 0 and again.stderr == ""


def test_pull_refusal_after_starting_over_says_both(
    app: typer.Typer, feed: Path, trust: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert pull(app, feed, trust, state).exit_code == 0
    (state / "state.json").write_bytes(b"{")
    (state / "snapshot.json").write_bytes(b"{")
    feed.write_bytes(b"{not json")
    message = refusal(pull(app, feed, trust, state))
    assert message.startswith("refused feed document: MalformedDocument")
    assert "holding nothing" in message and "starting over with nothing held" in message


def test_real_vpnreg_feed_pull_refuses_a_huge_integer_with_exit_1(
    feed: Path, trust: Path, tmp_path: Path
) -> None:
    """It used to end in an internal error (exit 70) with Python's int-digits ValueError."""
    feed.write_bytes(b'{"type":"snapshot","serial":' + b"9" * 100_000 + b"}")
    args = [str(VPNREG), "feed", "pull", "--feed", str(feed), "--trust", str(trust)]
    args += ["--state-dir", str(tmp_path / "state")]
    env = {**os.environ, "VPNREG_FEED_TOKEN": ""}
    run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert run.returncode == 1 and run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("vpnreg: refused feed document: MalformedDocument: document holds")
