"""FeedClient against the fake feed server: snapshot, deltas, reset, notify, refusals, timers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.agent_feed.fakefeed import (
    BASE_ENTRIES,
    NEW_ENTRY,
    OTHER_KEY,
    OTHER_SESSION,
    TOKEN,
    TRUSTED,
    FakeFeedServer,
    delta_document,
    deltas_response,
    entry,
    later,
    new_history,
    raw_response,
)
from vpnreg.agent.feedclient import FeedClient, FeedMetrics, PollStatus, Timers
from vpnreg.agent.feedstore import SNAPSHOT_FILE, STATE_FILE
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import (
    AllowlistEntry,
    EnforcementMode,
    EntryTable,
    FeedState,
    HistoryDelta,
    Mode,
)

ENFORCE = EnforcementMode.enforce_all()


def commit_change(server: FakeFeedServer, clock: FrozenClock, *extra: AllowlistEntry) -> int:
    entries = [*server.history.entries.to_entries(), *extra] if extra else [NEW_ENTRY]
    return server.history.commit(entries, ENFORCE, later(clock))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


def test_first_poll_takes_the_snapshot_with_the_token(
    http_client: FeedClient, server: FakeFeedServer, state_dir: Path, registry: CollectorRegistry
) -> None:
    result = http_client.poll()
    assert result.status is PollStatus.UPDATED and result.error is None
    assert result.state is not None
    assert result.state.entries == EntryTable.from_entries(BASE_ENTRIES)
    assert result.state.serial == 1
    assert server.paths() == ["/snapshot"]
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert (state_dir / SNAPSHOT_FILE).read_bytes().startswith(b'{"type":"snapshot"')
    assert value(registry, "feed_serial") == 1
    assert value(registry, "feed_updates_total") == 1
    assert value(registry, "feed_stale") == 0


def test_then_deltas_bring_it_up_to_date_and_persist_a_rebuilt_copy(
    http_client: FeedClient, server: FakeFeedServer, clock: FrozenClock, state_dir: Path
) -> None:
    http_client.poll()
    commit_change(server, clock, NEW_ENTRY)
    serial = commit_change(server, clock, entry("2001:db8:1::/48", 5))
    result = http_client.poll()
    assert result.status is PollStatus.UPDATED
    assert result.state is not None and result.state.serial == serial == 3
    assert result.state.entries == server.history.entries
    assert server.paths() == ["/snapshot", "/delta"]
    assert server.requests[1].url.params["since"] == "1"
    assert server.requests[1].url.params["session"] == server.history.session_id
    assert (state_dir / SNAPSHOT_FILE).read_bytes().startswith(b'{"type":"rebuilt"')

    restarted = FeedClient(source=server.base, trusted=TRUSTED, state_dir=state_dir, clock=clock)
    held = restarted.load()
    assert held == result.state


def test_nothing_new_is_unchanged(http_client: FeedClient, server: FakeFeedServer) -> None:
    first = http_client.poll()
    again = http_client.poll()
    assert again.status is PollStatus.UNCHANGED
    assert again.state == first.state
    assert server.paths() == ["/snapshot", "/delta"]


def test_a_reset_to_a_new_session_fetches_the_snapshot(
    http_client: FeedClient, server: FakeFeedServer, clock: FrozenClock
) -> None:
    http_client.poll()
    server.history = new_history(later(clock), session_id=OTHER_SESSION)
    server.history.commit([NEW_ENTRY], ENFORCE, later(clock))
    result = http_client.poll()
    assert result.status is PollStatus.UPDATED
    assert result.state is not None
    assert (result.state.session_id, result.state.serial) == (OTHER_SESSION, 2)
    assert server.paths() == ["/snapshot", "/delta", "/snapshot"]


def test_a_serial_older_than_the_kept_deltas_gets_a_reset(
    clock: FrozenClock, state_dir: Path
) -> None:
    server = FakeFeedServer(history=new_history(clock.now(), max_deltas=1), clock=clock)
    client = FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        transport=server.transport(),
    )
    client.poll()
    commit_change(server, clock, NEW_ENTRY)
    commit_change(server, clock, entry("2001:db8:2::/48", 6))
    result = client.poll()
    assert result.status is PollStatus.UPDATED
    assert result.state is not None and result.state.serial == 3
    assert server.paths() == ["/snapshot", "/delta", "/snapshot"]


def test_a_reset_answered_304_is_unchanged(http_client: FeedClient, server: FakeFeedServer) -> None:
    held = http_client.poll().state
    server.override["/delta"] = raw_response(b'{"reset": true}')
    result = http_client.poll()
    assert result.status is PollStatus.UNCHANGED
    assert result.state == held
    assert server.requests[-1].headers["if-none-match"] == server.etag()


def test_long_poll_waits_on_the_delta_itself_one_request_per_change(
    http_client: FeedClient, server: FakeFeedServer, clock: FrozenClock
) -> None:
    http_client.poll()
    quiet = http_client.poll(wait_s=30)
    assert quiet.status is PollStatus.UNCHANGED
    assert server.paths() == ["/snapshot", "/delta"]
    assert server.requests[-1].url.params["wait"] == "30"
    assert server.requests[-1].url.params["since"] == "1"
    commit_change(server, clock, NEW_ENTRY)
    pushed = http_client.poll(wait_s=30)
    assert pushed.status is PollStatus.UPDATED
    assert server.paths() == ["/snapshot", "/delta", "/delta"]
    assert pushed.state is not None and pushed.state.serial == 2


def test_a_server_without_the_waiting_delta_is_long_polled_on_notify(
    http_client: FeedClient, server: FakeFeedServer, clock: FrozenClock
) -> None:
    server.delta_waits = False
    http_client.poll()
    first = http_client.poll(wait_s=30)  # answered at once with []: the form is not there
    assert first.status is PollStatus.UNCHANGED
    assert server.paths() == ["/snapshot", "/delta"]
    quiet = http_client.poll(wait_s=30)
    assert quiet.status is PollStatus.UNCHANGED
    assert server.paths() == ["/snapshot", "/delta", "/notify"]
    assert server.requests[-1].url.params["wait"] == "30"
    assert server.requests[-1].url.params["since"] == "1"
    commit_change(server, clock, NEW_ENTRY)
    pushed = http_client.poll(wait_s=30)
    assert pushed.status is PollStatus.UPDATED
    assert server.paths()[-2:] == ["/notify", "/delta"]


def test_gzip_compressed_snapshot_is_read(http_client: FeedClient, server: FakeFeedServer) -> None:
    server.gzip_snapshots = True
    result = http_client.poll()
    assert result.status is PollStatus.UPDATED
    assert result.state is not None and len(result.state.entries) == len(BASE_ENTRIES)


def test_near_expiry_the_snapshot_is_fetched_again_for_a_fresher_signature(
    http_client: FeedClient, server: FakeFeedServer, clock: FrozenClock, state_dir: Path
) -> None:
    first = http_client.poll().state
    assert first is not None
    clock.set(first.expires - dt.timedelta(minutes=30))  # inside expire_s (one hour)
    result = http_client.poll()
    assert result.status is PollStatus.UNCHANGED
    assert result.state is not None and result.state.expires > first.expires
    assert server.paths() == ["/snapshot", "/snapshot"]
    restarted = FeedClient(source=server.base, trusted=TRUSTED, state_dir=state_dir, clock=clock)
    held = restarted.load()
    assert held is not None and held.expires == result.state.expires


# -- refusals: the held state stays as it was -----------------------------------------------


def bad_step(server: FakeFeedServer, clock: FrozenClock) -> HistoryDelta:
    """A genuine next step (serial 1 -> 2) not committed to the server's history."""
    table = EntryTable.from_entries([*BASE_ENTRIES, NEW_ENTRY])
    return HistoryDelta(
        1, 2, EntryTable.from_entries([NEW_ENTRY]), EntryTable.empty(), table.set_hash(),
        ENFORCE, later(clock),
    )  # fmt: skip


def case_hash_mismatch(server: FakeFeedServer, clock: FrozenClock) -> None:
    step = bad_step(server, clock)
    wrong = EntryTable.from_entries(BASE_ENTRIES).set_hash()
    server.override["/delta"] = deltas_response(
        delta_document(session_of(server), step, clock.now(), set_hash=wrong)
    )


def case_bad_signature(server: FakeFeedServer, clock: FrozenClock) -> None:
    doc = delta_document(session_of(server), bad_step(server, clock), clock.now())
    doc["signature"] = OTHER_KEY.sign(b"something else").hex()[:86] + "=="
    server.override["/delta"] = deltas_response(doc)


def case_unknown_key(server: FakeFeedServer, clock: FrozenClock) -> None:
    doc = delta_document(session_of(server), bad_step(server, clock), clock.now(), key=OTHER_KEY)
    server.override["/delta"] = deltas_response(doc)


def case_other_session(server: FakeFeedServer, clock: FrozenClock) -> None:
    server.override["/delta"] = deltas_response(
        delta_document(OTHER_SESSION, bad_step(server, clock), clock.now())
    )


def case_gap(server: FakeFeedServer, clock: FrozenClock) -> None:
    step = dataclasses.replace(bad_step(server, clock), previous_serial=2, serial=3)
    server.override["/delta"] = deltas_response(
        delta_document(session_of(server), step, clock.now())
    )


def case_truncated_envelope(server: FakeFeedServer, clock: FrozenClock) -> None:
    doc = delta_document(session_of(server), bad_step(server, clock), clock.now())
    body = b'{"deltas":[' + json.dumps(doc).encode()
    server.override["/delta"] = raw_response(body[: len(body) // 2])


def case_malformed_envelope(server: FakeFeedServer, clock: FrozenClock) -> None:
    server.override["/delta"] = raw_response(b"<html>proxy error</html>")


def case_envelope_without_deltas(server: FakeFeedServer, clock: FrozenClock) -> None:
    server.override["/delta"] = raw_response(b'{"items": []}')


def case_expired_delta(server: FakeFeedServer, clock: FrozenClock) -> None:
    step = bad_step(server, clock)
    later(clock, 120)
    doc = delta_document(session_of(server), step, step.created, validity=dt.timedelta(minutes=1))
    server.override["/delta"] = deltas_response(doc)


def case_second_delta_tampered(server: FakeFeedServer, clock: FrozenClock) -> None:
    """All or nothing: a good first delta is not applied when the second one is bad."""
    first = bad_step(server, clock)
    after = EntryTable.from_entries([*BASE_ENTRIES, NEW_ENTRY, entry("2001:db8:3::/48", 7)])
    second = HistoryDelta(
        2, 3, EntryTable.from_entries([entry("2001:db8:3::/48", 7)]), EntryTable.empty(),
        after.set_hash(), ENFORCE, later(clock),
    )  # fmt: skip
    doc2 = delta_document(session_of(server), second, clock.now())
    doc2["serial"] = 4
    server.override["/delta"] = deltas_response(
        delta_document(session_of(server), first, clock.now()), doc2
    )


def case_older_creation_time(server: FakeFeedServer, clock: FrozenClock) -> None:
    step = dataclasses.replace(bad_step(server, clock), created=clock.now() - dt.timedelta(days=1))
    server.override["/delta"] = deltas_response(
        delta_document(session_of(server), step, clock.now())
    )


def session_of(server: FakeFeedServer) -> str:
    return server.history.session_id


REFUSALS = [
    pytest.param(case_hash_mismatch, "HashMismatch", id="delta-set-hash-mismatch"),
    pytest.param(case_bad_signature, "BadSignature", id="wrong-signature"),
    pytest.param(case_unknown_key, "UnknownKey", id="unknown-key-id"),
    pytest.param(case_other_session, "SessionMismatch", id="delta-of-another-session"),
    pytest.param(case_gap, "NotApplicable", id="delta-not-from-held-serial"),
    pytest.param(case_truncated_envelope, "TruncatedDocument", id="truncated-body"),
    pytest.param(case_malformed_envelope, "MalformedDocument", id="malformed-json"),
    pytest.param(case_envelope_without_deltas, "MalformedDocument", id="envelope-shape"),
    pytest.param(case_expired_delta, "Expired", id="expired-delta"),
    pytest.param(case_second_delta_tampered, "BadSignature", id="second-of-two-tampered"),
    pytest.param(case_older_creation_time, "Rollback", id="created-before-held"),
]


@pytest.mark.parametrize(("make_fault", "kind"), REFUSALS)
def test_bad_deltas_are_refused_and_the_last_good_set_kept(
    http_client: FeedClient,
    server: FakeFeedServer,
    clock: FrozenClock,
    state_dir: Path,
    registry: CollectorRegistry,
    make_fault: object,
    kind: str,
) -> None:
    held = http_client.poll().state
    on_disk = {name: (state_dir / name).read_bytes() for name in (SNAPSHOT_FILE,)}
    assert callable(make_fault)
    make_fault(server, clock)
    result = http_client.poll()
    assert result.status is PollStatus.REFUSED
    assert result.error_kind == kind
    assert result.error is not None and "\n" not in result.error and kind in result.error
    assert "keeping serial 1" in result.error
    assert result.state == held and http_client.state == held
    assert (state_dir / SNAPSHOT_FILE).read_bytes() == on_disk[SNAPSHOT_FILE]
    assert value(registry, "feed_refused_total", kind=kind) == 1
    assert value(registry, "feed_serial") == 1


def test_a_refused_snapshot_of_a_lower_serial_is_a_rollback(
    http_client: FeedClient, server: FakeFeedServer, clock: FrozenClock
) -> None:
    old_history = new_history(clock.now())
    commit_change(server, clock, NEW_ENTRY)
    http_client.poll()
    # The server is restored from a backup: same session, serial 1, later signing time.
    server.history = old_history
    server.override["/delta"] = raw_response(b'{"reset": true}')
    result = http_client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "Rollback"
    assert result.state is not None and result.state.serial == 2


def test_unauthorised_is_unreachable_and_says_so(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    client = FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token="wrong",
        transport=server.transport(),
        metrics=FeedMetrics(registry),
    )
    result = client.poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "http"
    assert result.error is not None and "401" in result.error and "token" in result.error
    assert result.state is None
    assert value(registry, "feed_unreachable_total", kind="http") == 1
    assert not state_dir.exists()


def test_network_errors_keep_the_held_state(
    http_client: FeedClient, server: FakeFeedServer
) -> None:
    held = http_client.poll().state

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    server.override["/delta"] = down
    result = http_client.poll()
    assert result.status is PollStatus.UNREACHABLE
    assert result.error is not None and "ConnectError" in result.error
    assert result.state == held


# -- timers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_stale", "expected"),
    [
        pytest.param("keep", EnforcementMode.enforce_all(), id="keep-signed-mode"),
        pytest.param("dry-run", EnforcementMode(Mode.DRY_RUN), id="dry-run-when-stale"),
    ],
)
def test_stale_after_expire_without_fresh_feed_never_empties_the_set(
    server: FakeFeedServer,
    state_dir: Path,
    clock: FrozenClock,
    registry: CollectorRegistry,
    on_stale: str,
    expected: EnforcementMode,
) -> None:
    client = FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        transport=server.transport(),
        metrics=FeedMetrics(registry),
        timers=Timers(expire_s=600, on_stale=on_stale),  # type: ignore[arg-type]
    )
    held = client.poll().state
    assert held is not None
    server.override["/delta"] = raw_response(b"", status=503)
    clock.advance(dt.timedelta(seconds=599))
    assert client.poll().status is PollStatus.UNREACHABLE
    assert not client.stale() and client.effective_mode() == ENFORCE
    clock.advance(dt.timedelta(seconds=1))
    result = client.poll()
    assert client.stale()
    assert client.effective_mode() == expected
    assert result.state == held and client.state == held
    assert value(registry, "feed_stale") == 1
    del server.override["/delta"]
    assert client.poll().status is PollStatus.UNCHANGED
    assert not client.stale() and client.effective_mode() == ENFORCE
    assert value(registry, "feed_stale") == 0


def test_a_held_copy_past_its_signed_expiry_is_stale(
    http_client: FeedClient, clock: FrozenClock
) -> None:
    held = http_client.poll().state
    assert held is not None
    clock.set(held.expires)
    assert http_client.stale()
    assert http_client.state == held


def test_run_applies_updates_until_stopped(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock
) -> None:
    client = FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        transport=server.transport(),
        timers=Timers(refresh_s=0.01, retry_s=0.01),
    )
    stop = threading.Event()
    seen: list[int] = []
    staleness: list[bool] = []
    second = threading.Event()

    def on_update(state: FeedState) -> None:
        seen.append(state.serial)
        if state.serial == 2:
            second.set()

    thread = threading.Thread(
        target=client.run, args=(stop, on_update), kwargs={"on_staleness": staleness.append}
    )
    thread.start()
    try:
        server.history.commit([NEW_ENTRY], ENFORCE, clock.now() + dt.timedelta(seconds=1))
        assert second.wait(5)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert seen[-1] == 2 and seen == sorted(seen)
    assert staleness[0] is False
    assert "/delta" in server.paths() and "/notify" not in server.paths()


def test_timers_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        Timers(refresh_s=0)
    with pytest.raises(ValueError, match="on_stale"):
        Timers(on_stale="purge")  # type: ignore[arg-type]


def test_state_json_records_the_floor_and_the_verification_time(
    http_client: FeedClient, state_dir: Path, clock: FrozenClock
) -> None:
    http_client.poll()
    body = json.loads((state_dir / STATE_FILE).read_text())
    assert body["held"]["serial"] == 1
    assert dt.datetime.fromisoformat(body["verified_at"]) == clock.now()
