"""FeedClient on a snapshot file, and what a restart re-verifies in the state directory."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.agent_feed.fakefeed import (
    NEW_ENTRY,
    OTHER_KEY,
    OTHER_SESSION,
    TRUSTED,
    entry,
    later,
    new_history,
    snapshot_bytes,
)
from vpnreg.agent.feedclient import FeedClient, FeedMetrics, PollStatus
from vpnreg.agent.feedstore import COMPACT_FILE, SNAPSHOT_FILE, STATE_FILE, StoredStateError
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EnforcementMode, FeedHistory, key_id

ENFORCE = EnforcementMode.enforce_all()


def write_feed(path: Path, raw: bytes) -> None:
    """Replace the feed file the way a publisher should (new inode)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, path)


def file_client(
    feed: Path, state_dir: Path, clock: FrozenClock, metrics: FeedMetrics | None = None
) -> FeedClient:
    return FeedClient(
        source=str(feed), trusted=TRUSTED, state_dir=state_dir, clock=clock, metrics=metrics
    )


@pytest.fixture
def history(clock: FrozenClock) -> FeedHistory:
    return new_history(clock.now())


@pytest.fixture
def feed(tmp_path: Path, history: FeedHistory, clock: FrozenClock) -> Path:
    path = tmp_path / "feed.json"
    write_feed(path, snapshot_bytes(history, clock.now()))
    return path


def test_file_feed_first_read_then_unchanged_until_replaced(
    feed: Path, state_dir: Path, clock: FrozenClock, history: FeedHistory
) -> None:
    client = file_client(feed, state_dir, clock)
    assert client.load() is None
    first = client.poll()
    assert first.status is PollStatus.UPDATED and first.state is not None
    assert (state_dir / SNAPSHOT_FILE).read_bytes() == feed.read_bytes()
    assert client.poll().status is PollStatus.UNCHANGED
    # The same document written again (new inode): re-read, verified, equal: a no-op.
    write_feed(feed, feed.read_bytes())
    assert client.poll().status is PollStatus.UNCHANGED
    history.commit([NEW_ENTRY], ENFORCE, later(clock))
    write_feed(feed, snapshot_bytes(history, clock.now()))
    second = client.poll()
    assert second.status is PollStatus.UPDATED
    assert second.state is not None and second.state.serial == 2


def test_a_missing_feed_file_is_unreachable(tmp_path: Path, clock: FrozenClock) -> None:
    client = file_client(tmp_path / "nowhere.json", tmp_path / "state", clock)
    result = client.poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "io"


def test_file_url_form_is_a_path(feed: Path, state_dir: Path, clock: FrozenClock) -> None:
    client = FeedClient(source=f"file://{feed}", trusted=TRUSTED, state_dir=state_dir, clock=clock)
    assert not client.is_url
    assert client.poll().status is PollStatus.UPDATED


# -- bad documents -----------------------------------------------------------------------------


def tampered_entry(raw: bytes) -> bytes:
    doc = json.loads(raw)
    doc["entries"][0]["registration_id"] += 1
    return json.dumps(doc).encode()


def tampered_serial(raw: bytes) -> bytes:
    doc = json.loads(raw)
    doc["serial"] += 1
    return json.dumps(doc).encode()


def unsigned(raw: bytes) -> bytes:
    doc = json.loads(raw)
    del doc["signature"]
    return json.dumps(doc).encode()


def wrong_signature(raw: bytes) -> bytes:
    doc = json.loads(raw)
    sig = doc["signature"]
    doc["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    return json.dumps(doc).encode()


FileFault = Callable[[FeedHistory, FrozenClock, bytes], bytes]

FILE_REFUSALS: list[object] = [
    pytest.param(lambda h, c, raw: b"{not json", "MalformedDocument", id="malformed-json"),
    pytest.param(lambda h, c, raw: raw[: len(raw) - 40], "TruncatedDocument", id="truncated"),
    pytest.param(lambda h, c, raw: unsigned(raw), "UnsignedDocument", id="unsigned"),
    pytest.param(lambda h, c, raw: wrong_signature(raw), "BadSignature", id="wrong-signature"),
    pytest.param(lambda h, c, raw: tampered_serial(raw), "BadSignature", id="tampered-header"),
    pytest.param(lambda h, c, raw: tampered_entry(raw), "HashMismatch", id="tampered-entry"),
    pytest.param(
        lambda h, c, raw: snapshot_bytes(h, c.now(), key=OTHER_KEY),
        "UnknownKey",
        id="unknown-key-id",
    ),
    pytest.param(
        lambda h, c, raw: snapshot_bytes(h, h.created, validity=dt.timedelta(seconds=30)),
        "Expired",
        id="expired",
    ),
    pytest.param(
        lambda h, c, raw: snapshot_bytes(new_history(c.now() - dt.timedelta(hours=1)), c.now()),
        "Rollback",
        id="serial-goes-backwards",
    ),
    pytest.param(
        lambda h, c, raw: snapshot_bytes(
            new_history(c.now() - dt.timedelta(hours=2), session_id=OTHER_SESSION), c.now()
        ),
        "Rollback",
        id="other-session-created-earlier",
    ),
]


@pytest.mark.parametrize(("fault", "kind"), FILE_REFUSALS)
def test_bad_feed_files_are_refused_and_the_last_good_set_kept(
    tmp_path: Path,
    state_dir: Path,
    clock: FrozenClock,
    history: FeedHistory,
    fault: FileFault,
    kind: str,
) -> None:
    registry = CollectorRegistry()
    feed = tmp_path / "feed.json"
    clock.advance(dt.timedelta(hours=1))
    history.commit([NEW_ENTRY], ENFORCE, clock.now())
    write_feed(feed, snapshot_bytes(history, clock.now()))
    client = file_client(feed, state_dir, clock, FeedMetrics(registry))
    held = client.poll().state
    assert held is not None and held.serial == 2
    saved = (state_dir / SNAPSHOT_FILE).read_bytes()
    later(clock)
    write_feed(feed, fault(history, clock, feed.read_bytes()))
    result = client.poll()
    assert result.status is PollStatus.REFUSED
    assert result.error_kind == kind
    assert result.state == held == client.state
    assert (state_dir / SNAPSHOT_FILE).read_bytes() == saved
    assert registry.get_sample_value("feed_refused_total", {"kind": kind}) == 1


def test_a_newer_session_created_later_is_accepted(
    feed: Path, state_dir: Path, clock: FrozenClock
) -> None:
    client = file_client(feed, state_dir, clock)
    client.poll()
    write_feed(
        feed, snapshot_bytes(new_history(later(clock), session_id=OTHER_SESSION), clock.now())
    )
    result = client.poll()
    assert result.status is PollStatus.UPDATED
    assert result.state is not None and result.state.session_id == OTHER_SESSION


# -- restart -----------------------------------------------------------------------------------


@pytest.fixture
def held_dir(feed: Path, state_dir: Path, clock: FrozenClock, history: FeedHistory) -> Path:
    """A state directory holding serial 2 (from a snapshot file)."""
    history.commit([NEW_ENTRY], ENFORCE, later(clock))
    write_feed(feed, snapshot_bytes(history, clock.now()))
    assert file_client(feed, state_dir, clock).poll().status is PollStatus.UPDATED
    return state_dir


def test_restart_reloads_and_re_verifies(held_dir: Path, feed: Path, clock: FrozenClock) -> None:
    client = file_client(feed, held_dir, clock)
    state = client.load()
    assert state is not None and state.serial == 2
    assert not client.stale()
    assert client.poll().status is PollStatus.UNCHANGED


def test_restart_refuses_an_older_feed_file(held_dir: Path, feed: Path, clock: FrozenClock) -> None:
    older = new_history(clock.now() - dt.timedelta(seconds=30))
    write_feed(feed, snapshot_bytes(older, clock.now()))
    client = file_client(feed, held_dir, clock)
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "Rollback"
    assert result.state is not None and result.state.serial == 2


def edit_state(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))


def bump_serial(body: dict[str, object]) -> None:
    held = body["held"]
    assert isinstance(held, dict)
    held["serial"] += 1


def other_hash(body: dict[str, object]) -> None:
    held = body["held"]
    assert isinstance(held, dict)
    held["set_hash"] = "0" * 64


def later_created(body: dict[str, object]) -> None:
    held = body["held"]
    assert isinstance(held, dict)
    held["created"] = "2030-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(bump_serial, id="serial-raised"),
        pytest.param(other_hash, id="set-hash-changed"),
        pytest.param(later_created, id="created-moved-later"),
    ],
)
def test_restart_refuses_a_state_json_edited_by_hand(
    held_dir: Path, feed: Path, clock: FrozenClock, change: Callable[[dict[str, object]], None]
) -> None:
    edit_state(held_dir / STATE_FILE, change)
    client = file_client(feed, held_dir, clock)
    with pytest.raises(StoredStateError):
        client.load()
    result = file_client(feed, held_dir, clock).poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "StoredStateError"
    assert result.error is not None and "refused held state" in result.error


def test_restart_refuses_an_edited_snapshot_json(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    # without the compact copy (ADR 0011), which load would take instead: snapshot.json decides
    (held_dir / COMPACT_FILE).unlink()
    path = held_dir / SNAPSHOT_FILE
    path.write_bytes(tampered_entry(path.read_bytes()))
    with pytest.raises(StoredStateError, match="HashMismatch"):
        file_client(feed, held_dir, clock).load()


def test_restart_refuses_a_snapshot_json_swapped_for_an_older_signed_one(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    (held_dir / COMPACT_FILE).unlink()
    older = new_history(clock.now() - dt.timedelta(seconds=30))
    (held_dir / SNAPSHOT_FILE).write_bytes(snapshot_bytes(older, clock.now()))
    with pytest.raises(StoredStateError, match="older than the state recorded"):
        file_client(feed, held_dir, clock).load()


def test_restart_refuses_a_copy_signed_by_a_key_no_longer_trusted(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    client = FeedClient(
        source=str(feed),
        trusted={key_id(OTHER_KEY.public_key()): OTHER_KEY.public_key()},
        state_dir=held_dir,
        clock=clock,
    )
    with pytest.raises(StoredStateError, match="UnknownKey"):
        client.load()


def test_state_json_missing_with_a_copy_left_is_refused(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    (held_dir / SNAPSHOT_FILE).unlink()
    with pytest.raises(StoredStateError, match="missing"):
        file_client(feed, held_dir, clock).load()


def test_a_crash_between_the_two_renames_is_recovered(
    held_dir: Path, feed: Path, clock: FrozenClock, history: FeedHistory
) -> None:
    """snapshot.json is renamed before state.json: a newer copy than the floor is accepted."""
    floor = (held_dir / STATE_FILE).read_bytes()
    history.commit([NEW_ENTRY, entry("2001:db8:9::/48", 9)], ENFORCE, later(clock))
    write_feed(feed, snapshot_bytes(history, clock.now()))
    assert file_client(feed, held_dir, clock).poll().status is PollStatus.UPDATED
    (held_dir / STATE_FILE).write_bytes(floor)
    state = file_client(feed, held_dir, clock).load()
    assert state is not None and state.serial == 3


def test_an_expired_held_copy_is_kept_and_stale(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    clock.advance(dt.timedelta(days=3))
    client = file_client(feed, held_dir, clock)
    state = client.load()
    assert state is not None and state.serial == 2
    assert client.stale()
    assert client.effective_mode() == ENFORCE  # on_stale defaults to keep
