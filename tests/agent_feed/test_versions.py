"""The feed client and entry versions (ADR 0006): a v1 feed is still read and enforced
generously, the registry's move to a v2 session is followed, a delta of another version than
the set held makes the client fetch a snapshot, and an unknown version is refused with the last
good copy kept."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx

from tests.agent_feed.fakefeed import (
    OTHER_SESSION,
    SESSION,
    TOKEN,
    TRUSTED,
    FakeFeedServer,
    delta_document,
    deltas_response,
    later,
    new_history,
    raw_response,
    snapshot_bytes,
)
from vpnreg.agent.feedclient import FeedClient, PollStatus, Timers
from vpnreg.agent.feedstore import SNAPSHOT_FILE
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EnforcementMode, EntryTable, FeedHistory

ENFORCE = EnforcementMode.enforce_all()
V1_ENTRIES = [
    {"prefix": "192.0.2.0/24", "peers": [], "registration_id": 1, "valid_until": "2027-01-31"},
    {"prefix": "2001:db8::/32", "peers": [], "registration_id": 3, "valid_until": "2026-12-31"},
]
V1_NEW = {
    "prefix": "203.0.113.0/24",
    "peers": [],
    "registration_id": 4,
    "valid_until": "2026-06-30",
}


def v1_history(now: dt.datetime) -> FeedHistory:
    return FeedHistory.new(
        session_id=SESSION,
        now=now,
        entries=EntryTable.from_json_list(V1_ENTRIES, version=1),
        mode=ENFORCE,
    )


def client(server: FakeFeedServer, state_dir: Path, clock: FrozenClock) -> FeedClient:
    return FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        transport=server.transport(),
        timers=Timers(refresh_s=60, retry_s=10, expire_s=3600),
    )


def test_a_v1_feed_is_read_kept_and_enforced_generously(
    clock: FrozenClock, state_dir: Path
) -> None:
    server = FakeFeedServer(history=v1_history(clock.now()), clock=clock)
    with client(server, state_dir, clock) as first:
        assert first.poll().status is PollStatus.UPDATED
        assert first.state is not None and first.state.version == 1
        # a v1 delta applies to the v1 set held, and the rebuilt copy stays v1
        server.history.commit(
            EntryTable.from_json_list([*V1_ENTRIES, V1_NEW], version=1), ENFORCE, later(clock)
        )
        assert first.poll().status is PollStatus.UPDATED
        assert server.paths() == ["/snapshot", "/delta"]
    assert (state_dir / SNAPSHOT_FILE).read_bytes().startswith(b'{"type":"rebuilt"')
    with client(server, state_dir, clock) as restarted:
        state = restarted.load()
    assert state is not None and state.version == 1 and state.serial == 2
    enforced = {e.registration_id: e for e in state.entries.to_entries()}
    assert enforced[4].valid_until == dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
    assert (enforced[4].ports, enforced[4].protocols) == ((0, 65535), frozenset())


def test_the_registry_moving_to_v2_is_a_new_session_the_client_follows(
    clock: FrozenClock, state_dir: Path
) -> None:
    server = FakeFeedServer(history=v1_history(clock.now()), clock=clock)
    with client(server, state_dir, clock) as feed:
        assert feed.poll().status is PollStatus.UPDATED
        # migration 0007 cleared the stored feed: the next publish is serial 1 of a new session
        server.history = new_history(later(clock), session_id=OTHER_SESSION)
        result = feed.poll()
        assert result.status is PollStatus.UPDATED, result.error
        assert feed.state is not None and feed.state.version == 2
        assert feed.state.session_id == OTHER_SESSION
        assert server.paths() == ["/snapshot", "/delta", "/snapshot"]


def test_a_delta_of_another_version_makes_the_client_fetch_a_snapshot(
    server: FakeFeedServer, http_client: FeedClient, clock: FrozenClock
) -> None:
    assert http_client.poll().status is PollStatus.UPDATED
    held = http_client.state
    assert held is not None and held.version == 2
    # a v1 delta from the held serial (a confused or downgraded server)
    v1_step = v1_history(held.created)
    v1_step.commit(
        EntryTable.from_json_list([*V1_ENTRIES, V1_NEW], version=1), ENFORCE, later(clock)
    )
    step = v1_step.deltas[-1]
    server.override["/delta"] = deltas_response(delta_document(SESSION, step, clock.now()))
    result = http_client.poll()
    assert result.status is PollStatus.UNCHANGED, result.error
    assert server.paths()[-2:] == ["/delta", "/snapshot"]
    assert http_client.state is not None and http_client.state.version == 2
    assert http_client.state.set_hash == held.set_hash


def test_an_unknown_version_is_refused_and_the_last_good_copy_kept(
    server: FakeFeedServer, http_client: FeedClient, clock: FrozenClock, state_dir: Path
) -> None:
    assert http_client.poll().status is PollStatus.UPDATED
    held = http_client.state
    kept = (state_dir / SNAPSHOT_FILE).read_bytes()
    newer = json.loads(snapshot_bytes(server.history, later(clock)))
    newer["version"] = 3
    server.override["/delta"] = lambda _request: httpx.Response(200, json={"reset": True})
    server.override["/snapshot"] = raw_response(json.dumps(newer).encode())
    result = http_client.poll()
    assert result.status is PollStatus.REFUSED
    assert result.error_kind == "UnsupportedVersion"
    assert result.error is not None
    assert "feed document version 3 is not supported (this client reads 1 and 2)" in result.error
    assert "keeping serial 1" in result.error
    assert http_client.state == held
    assert (state_dir / SNAPSHOT_FILE).read_bytes() == kept
