"""The compact snapshot (ADR 0011) in the feed client: fetched where offered (API, static feed,
file) with the same verification, anti-rollback and keep-last-good policy as JSON; the state
directory keeps snapshot.json in JSON form and a compact copy beside it, which start-up prefers."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.agent_feed.fakefeed import (
    KEY,
    NEW_ENTRY,
    TOKEN,
    TRUSTED,
    FakeFeedServer,
    compact_bytes,
    later,
    new_history,
    raw_response,
    snapshot_bytes,
)
from tests.agent_feed.test_static_feed import StaticWeb, add, files
from vpnreg.agent.feedclient import FeedClient, PollStatus, Timers
from vpnreg.agent.feedstore import COMPACT_FILE, SNAPSHOT_FILE
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import (
    COMPACT_MEDIA_TYPE,
    EntryTable,
    FeedHistory,
    VerifiedSnapshot,
    is_compact,
    verify_compact,
    verify_document,
)
from vpnreg.core.feed.compact import read_compact
from vpnreg.core.feed.notification import compact_sidecar
from vpnreg.registry.feed_static import (
    NOTIFICATION_FILE,
    StaticFeedOptions,
    StaticWrite,
    write_static_feed,
)

TIMERS = Timers(refresh_s=60, retry_s=10, expire_s=3600)


def flip_record_byte(raw: bytes) -> bytes:
    """A compact snapshot whose body no longer hashes to its signed set hash: a bit of the
    first record's registration id is flipped."""
    _, at = read_compact(raw)
    at += 8 + 18 + 7
    return raw[:at] + bytes([raw[at] ^ 0x02]) + raw[at + 1 :]


def http_client(server: FakeFeedServer, state_dir: Path, clock: FrozenClock) -> FeedClient:
    return FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        transport=server.transport(),
        timers=TIMERS,
    )


@pytest.fixture
def server(clock: FrozenClock) -> FakeFeedServer:
    return FakeFeedServer(history=new_history(clock.now()), clock=clock, compact_snapshots=True)


@pytest.fixture
def client(server: FakeFeedServer, state_dir: Path, clock: FrozenClock) -> Iterator[FeedClient]:
    with http_client(server, state_dir, clock) as made:
        yield made


# -- the API ---------------------------------------------------------------------------------


def test_the_api_client_asks_for_the_compact_snapshot_and_keeps_json(
    server: FakeFeedServer, client: FeedClient, state_dir: Path, clock: FrozenClock
) -> None:
    result = client.poll()
    assert result.status is PollStatus.UPDATED and result.state is not None
    accept = server.requests[-1].headers["accept"]
    assert accept.startswith(COMPACT_MEDIA_TYPE) and "application/json" in accept
    assert result.state.entries == server.history.entries
    # the last good copy stays JSON: the very document the server would have sent as JSON
    held = (state_dir / SNAPSHOT_FILE).read_bytes()
    assert held == snapshot_bytes(server.history, clock.now())
    assert isinstance(verify_document(held, trusted=TRUSTED, now=clock.now()), VerifiedSnapshot)
    # and the compact copy beside it is what was received
    assert (state_dir / COMPACT_FILE).read_bytes() == compact_bytes(server.history, clock.now())


def test_a_tampered_compact_body_is_refused_and_the_last_good_copy_kept(
    server: FakeFeedServer, client: FeedClient, state_dir: Path, clock: FrozenClock
) -> None:
    assert client.poll().status is PollStatus.UPDATED
    held = files(state_dir)
    server.history.commit(
        server.history.entries.union(EntryTable.from_entries([NEW_ENTRY])),
        server.history.mode,
        later(clock),
    )
    genuine = compact_bytes(server.history, clock.now())
    assert verify_compact(genuine, trusted=TRUSTED, now=clock.now()).serial == 2
    tampered = flip_record_byte(genuine)
    server.override["/delta"] = raw_response(b'{"reset": true}')
    server.override["/snapshot"] = lambda _r: httpx.Response(
        200, content=tampered, headers={"Content-Type": COMPACT_MEDIA_TYPE}
    )
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "HashMismatch"
    assert result.state is not None and result.state.serial == 1
    assert files(state_dir) == held
    # a compact snapshot older than the state held is a rollback, as in JSON
    old = compact_bytes(new_history(clock.now() - dt.timedelta(hours=1)), clock.now())
    server.override["/snapshot"] = raw_response(old)
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "Rollback"
    assert files(state_dir) == held


def test_a_server_without_the_compact_form_is_read_as_before(
    state_dir: Path, clock: FrozenClock
) -> None:
    plain = FakeFeedServer(history=new_history(clock.now()), clock=clock)
    with http_client(plain, state_dir, clock) as client:
        assert client.poll().status is PollStatus.UPDATED
    assert (state_dir / SNAPSHOT_FILE).read_bytes() == snapshot_bytes(plain.history, clock.now())
    # the client made the compact copy itself, for a fast start
    copy = verify_compact((state_dir / COMPACT_FILE).read_bytes(), trusted=TRUSTED, now=clock.now())
    assert copy.entries == plain.history.entries


# -- the state directory ---------------------------------------------------------------------


def test_start_up_prefers_a_compact_copy_that_is_exactly_the_floor(
    server: FakeFeedServer, client: FeedClient, state_dir: Path, clock: FrozenClock
) -> None:
    assert client.poll().status is PollStatus.UPDATED
    json_copy = (state_dir / SNAPSHOT_FILE).read_bytes()
    # snapshot.json is not read when the compact copy is the state recorded: garble it
    (state_dir / SNAPSHOT_FILE).write_bytes(b"{garbled")
    loaded = http_client(server, state_dir, clock).load()
    assert loaded is not None and loaded.entries == server.history.entries
    # a compact copy that does not verify is passed over: snapshot.json decides
    (state_dir / SNAPSHOT_FILE).write_bytes(json_copy)
    compact = (state_dir / COMPACT_FILE).read_bytes()
    (state_dir / COMPACT_FILE).write_bytes(flip_record_byte(compact))
    loaded = http_client(server, state_dir, clock).load()
    assert loaded is not None and loaded.entries == server.history.entries


def test_start_up_ignores_a_compact_copy_older_than_the_floor(
    server: FakeFeedServer, client: FeedClient, state_dir: Path, clock: FrozenClock
) -> None:
    assert client.poll().status is PollStatus.UPDATED
    old_compact = (state_dir / COMPACT_FILE).read_bytes()
    server.history.commit(
        server.history.entries.union(EntryTable.from_entries([NEW_ENTRY])),
        server.history.mode,
        later(clock),
    )
    assert client.poll().status is PollStatus.UPDATED
    (state_dir / COMPACT_FILE).write_bytes(old_compact)  # validly signed, but serial 1
    loaded = http_client(server, state_dir, clock).load()
    assert loaded is not None and loaded.serial == 2


def test_a_set_rebuilt_from_deltas_has_a_compact_copy_proven_by_its_delta(
    server: FakeFeedServer, client: FeedClient, state_dir: Path, clock: FrozenClock
) -> None:
    assert client.poll().status is PollStatus.UPDATED
    server.history.commit(
        server.history.entries.union(EntryTable.from_entries([NEW_ENTRY])),
        server.history.mode,
        later(clock),
    )
    assert client.poll().status is PollStatus.UPDATED
    assert server.paths()[-1] == "/delta"
    assert (state_dir / SNAPSHOT_FILE).read_bytes().startswith(b'{"type":"rebuilt"')
    (state_dir / SNAPSHOT_FILE).write_bytes(b"{garbled")
    loaded = http_client(server, state_dir, clock).load()
    assert loaded is not None and loaded.serial == 2
    assert loaded.entries == server.history.entries


# -- a file ----------------------------------------------------------------------------------


def test_a_compact_snapshot_file_is_a_feed_file(
    tmp_path: Path, state_dir: Path, clock: FrozenClock
) -> None:
    history = new_history(clock.now())
    feed = tmp_path / "allowlist.compact"
    feed.write_bytes(compact_bytes(history, clock.now()))
    with FeedClient(
        source=str(feed), trusted=TRUSTED, state_dir=state_dir, clock=clock, timers=TIMERS
    ) as client:
        assert client.poll().status is PollStatus.UPDATED
        assert client.state is not None and client.state.entries == history.entries
        later(clock)
        feed.write_bytes(flip_record_byte(compact_bytes(history, clock.now())))
        held = files(state_dir)
        result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "HashMismatch"
    assert files(state_dir) == held


# -- the static feed -------------------------------------------------------------------------

OPTIONS = StaticFeedOptions(
    validity=dt.timedelta(days=1), resign_after=0.5, grace=dt.timedelta(hours=1)
)


def publish(directory: Path, history: FeedHistory, clock: FrozenClock) -> StaticWrite:
    return write_static_feed(directory, history, key=KEY, now=clock.now(), options=OPTIONS)


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    return tmp_path / "static"


@pytest.fixture
def history(clock: FrozenClock) -> FeedHistory:
    return new_history(clock.now())


@pytest.fixture
def web(feed_dir: Path) -> StaticWeb:
    return StaticWeb(feed_dir)


@pytest.fixture
def static_client(web: StaticWeb, state_dir: Path, clock: FrozenClock) -> Iterator[FeedClient]:
    with FeedClient(
        source=web.base + NOTIFICATION_FILE,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        transport=web.transport(),
        timers=TIMERS,
    ) as made:
        yield made


def test_the_static_feed_writes_a_compact_twin_the_client_takes(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, web: StaticWeb,
    static_client: FeedClient, state_dir: Path,
) -> None:  # fmt: skip
    done = publish(feed_dir, history, clock)
    twin = compact_sidecar(done.notification.snapshot.uri)
    assert twin is not None and twin in done.written and twin.endswith(".compact.gz")
    snap = verify_compact(
        gzip.decompress((feed_dir / twin).read_bytes()), trusted=TRUSTED, now=clock.now()
    )
    assert (snap.serial, snap.expires) == (1, done.notification.snapshot.expires)
    assert static_client.poll().status is PollStatus.UPDATED
    # the notification, then the twin: the JSON snapshot file is never fetched
    assert [(s, n) for s, n, _ in web.log] == [(200, NOTIFICATION_FILE), (200, twin)]
    held = (state_dir / SNAPSHOT_FILE).read_bytes()
    json_file = gzip.decompress((feed_dir / done.notification.snapshot.uri).read_bytes())
    assert held == json_file  # the same signed document as the JSON file
    # a new serial follows the delta, as before
    add(history, clock, NEW_ENTRY)
    publish(feed_dir, history, clock)
    assert static_client.poll().status is PollStatus.UPDATED
    assert web.log[-1][1].startswith("delta-2-")


def test_a_tampered_or_foreign_twin_is_refused_and_nothing_is_written(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, static_client: FeedClient,
    state_dir: Path,
) -> None:  # fmt: skip
    first = publish(feed_dir, history, clock).notification
    first_twin = (feed_dir / str(compact_sidecar(first.snapshot.uri))).read_bytes()
    assert static_client.poll().status is PollStatus.UPDATED
    held = files(state_dir)
    history = new_history(later(clock, 7200), session_id="fedcba9876543210fedcba9876543210")
    second = publish(feed_dir, history, clock).notification
    twin = feed_dir / str(compact_sidecar(second.snapshot.uri))
    genuine = gzip.decompress(twin.read_bytes())
    twin.write_bytes(gzip.compress(flip_record_byte(genuine)))
    result = static_client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "HashMismatch"
    assert files(state_dir) == held
    # a validly signed twin of another state (here: the first session's) is not the one named
    twin.write_bytes(first_twin)
    result = static_client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "HashMismatch"
    assert result.error is not None and "not the snapshot the notification names" in result.error
    assert files(state_dir) == held


def test_a_static_feed_without_twins_is_read_from_json(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, web: StaticWeb,
    static_client: FeedClient,
) -> None:  # fmt: skip
    note = publish(feed_dir, history, clock).notification
    twin = compact_sidecar(note.snapshot.uri)
    assert twin is not None
    (feed_dir / twin).unlink()  # as an ADR 0009 writer leaves it
    assert static_client.poll().status is PollStatus.UPDATED
    assert [(s, n) for s, n, _ in web.log] == [
        (200, NOTIFICATION_FILE),
        (404, twin),
        (200, note.snapshot.uri),
    ]


def test_twins_are_removed_with_their_snapshot_after_the_grace_period(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    first = publish(feed_dir, history, clock).notification
    first_twin = compact_sidecar(first.snapshot.uri)
    add(history, clock, NEW_ENTRY)
    publish(feed_dir, history, clock)
    assert first_twin in files(feed_dir)  # dropped now, kept for the grace period
    later(clock, 3601)
    done = publish(feed_dir, history, clock)
    assert first.snapshot.uri in done.removed and first_twin in done.removed
    assert compact_sidecar(done.notification.snapshot.uri) in files(feed_dir)
    assert all(not is_compact(data) for data in files(feed_dir).values())  # all gzipped
