"""FeedClient against hostile or broken feeds (issue 16): huge bodies, gzip bombs, bodies that
trickle in, 5xx and timeouts, pathological JSON, and a state directory whose state.json is
corrupt. In every case the client answers with a refusal or "unreachable", keeps its last good
copy, and never reads more than its size limit."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.agent_feed.fakefeed import (
    BASE_ENTRIES,
    NEW_ENTRY,
    TOKEN,
    TRUSTED,
    FakeFeedServer,
    entry,
    later,
    new_history,
    raw_response,
    snapshot_bytes,
)
from vpnreg.agent import feedclient
from vpnreg.agent.feedclient import DEFAULT_MAX_BYTES, FeedClient, PollStatus, Timers
from vpnreg.agent.feedstore import SNAPSHOT_FILE, STATE_FILE
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EnforcementMode, EntryTable, FeedHistory

ENFORCE = EnforcementMode.enforce_all()
MiB = 1024 * 1024
GiB = 1024 * MiB
#: The limit the small clients below run with: far above the test documents (about 1 KB).
LIMIT = 1024 * 1024
#: Digits of the integer in a pathological document, and depth of the nested one.
HUGE = 100_000


class Body:
    """A streamed response body of `total` bytes, produced lazily; counts what was taken."""

    def __init__(self, total: int, *, piece: bytes = b" " * 65536) -> None:
        self.total = total
        self.piece = piece
        self.taken = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.taken < self.total:
            chunk = self.piece[: self.total - self.taken]
            self.taken += len(chunk)
            yield chunk


class GzipBomb:
    """A gzip stream that inflates to `total` zero bytes, compressed lazily (about 1 KB of
    compressed data per MiB); counts the uncompressed bytes it has sent so far."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.inflated = 0

    def __iter__(self) -> Iterator[bytes]:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(MiB)
        while self.inflated < self.total:
            self.inflated += len(block)
            out = packer.compress(block)
            if out:
                yield out
        yield packer.flush()


def client_for(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock, *, max_bytes: int = LIMIT
) -> FeedClient:
    return FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        transport=server.transport(),
        timers=Timers(refresh_s=60, retry_s=10, expire_s=3600),
        max_bytes=max_bytes,
    )


def force_snapshot(server: FakeFeedServer) -> None:
    """Make the held client fetch /snapshot next (as after a reset)."""
    server.override["/delta"] = raw_response(b'{"reset": true}')


def snapshot_with(server: FakeFeedServer, response: httpx.Response) -> None:
    force_snapshot(server)
    server.override["/snapshot"] = lambda _request: response


@pytest.fixture
def held(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock
) -> Iterator[tuple[FeedClient, bytes]]:
    """A client with the limit LIMIT holding serial 1, and its snapshot.json bytes."""
    client = client_for(server, state_dir, clock)
    assert client.poll().status is PollStatus.UPDATED
    yield client, (state_dir / SNAPSHOT_FILE).read_bytes()
    client.close()


def assert_kept(client: FeedClient, state_dir: Path, copy: bytes) -> None:
    assert client.state is not None and client.state.serial == 1
    assert client.state.entries == EntryTable.from_entries(BASE_ENTRIES)
    assert (state_dir / SNAPSHOT_FILE).read_bytes() == copy


# -- size limit: HTTP --------------------------------------------------------------------------


def test_the_default_limit_is_well_above_a_million_entry_snapshot() -> None:
    sample = [entry(f"10.{i // 256}.{i % 256}.0/24", i + 1, "198.51.100.0/24") for i in range(1000)]
    per_entry = len(EntryTable.from_entries(sample).to_json_text()) / len(sample)
    assert 2 * 1_000_000 * per_entry <= DEFAULT_MAX_BYTES


def test_a_1_gib_body_is_refused_while_streaming_and_the_rest_never_read(
    server: FakeFeedServer, held: tuple[FeedClient, bytes], state_dir: Path
) -> None:
    client, copy = held
    body = Body(GiB)  # no Content-Length: chunked, as a broken server would send it
    snapshot_with(server, httpx.Response(200, content=body))
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "DocumentTooLarge"
    assert result.error is not None and f"limit of {LIMIT} bytes" in result.error
    assert "keeping serial 1" in result.error
    assert LIMIT < body.taken <= LIMIT + 65536
    assert_kept(client, state_dir, copy)


def test_a_content_length_over_the_limit_is_refused_before_reading(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock
) -> None:
    """With the default limit: a server announcing 1 GiB is refused before one byte is read."""
    body = Body(GiB)
    server.override["/snapshot"] = lambda _request: httpx.Response(
        200, headers={"Content-Length": str(GiB)}, content=body
    )
    client = client_for(server, state_dir, clock, max_bytes=DEFAULT_MAX_BYTES)
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "DocumentTooLarge"
    assert result.error is not None and f"{GiB} bytes" in result.error
    assert body.taken == 0
    assert result.state is None and not state_dir.exists()


def test_a_gzip_bomb_is_refused_at_the_limit_in_bounded_memory(
    server: FakeFeedServer, held: tuple[FeedClient, bytes], state_dir: Path
) -> None:
    client, copy = held
    bomb = GzipBomb(GiB)
    snapshot_with(server, httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb))
    tracemalloc.start()
    try:
        result = client.poll()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is PollStatus.REFUSED and result.error_kind == "DocumentTooLarge"
    assert result.error is not None and "once decompressed" in result.error
    # The sender was stopped almost at once (its compressor emits every few MiB of input).
    assert bomb.inflated <= 16 * MiB
    assert peak < 4 * MiB
    assert_kept(client, state_dir, copy)


def test_a_gzip_body_within_the_limit_is_read_in_steps(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock
) -> None:
    """A compressed snapshot that inflates to more than one step (256 KiB) of output."""
    many = [entry(f"10.{i // 256}.{i % 256}.0/24", i + 1) for i in range(6000)]
    server.history.commit(many, ENFORCE, later(clock))
    server.gzip_snapshots = True
    client = client_for(server, state_dir, clock, max_bytes=DEFAULT_MAX_BYTES)
    raw = snapshot_bytes(server.history, clock.now())
    assert len(raw) > 2 * 256 * 1024 and len(gzip.compress(raw)) < len(raw) // 4
    result = client.poll()
    assert result.status is PollStatus.UPDATED
    assert result.state is not None and len(result.state.entries) == 6000


@pytest.mark.parametrize(
    ("headers", "body", "kind"),
    [
        pytest.param({"Content-Encoding": "gzip"}, b"this is not gzip", "MalformedDocument",
                     id="corrupt-gzip"),
        pytest.param({"Content-Encoding": "gzip"}, gzip.compress(b'{"a": 1}')[:-12],
                     "TruncatedDocument", id="cut-off-gzip"),
        pytest.param({"Content-Encoding": "compress"}, b"whatever", "MalformedDocument",
                     id="unsupported-encoding"),
    ],
)  # fmt: skip
def test_bad_compressed_bodies_are_refused(
    server: FakeFeedServer,
    held: tuple[FeedClient, bytes],
    state_dir: Path,
    headers: dict[str, str],
    body: bytes,
    kind: str,
) -> None:
    client, copy = held
    # stream=: the body as sent (content= would be decoded when the fake response is built).
    snapshot_with(server, httpx.Response(200, headers=headers, stream=httpx.ByteStream(body)))
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == kind
    assert_kept(client, state_dir, copy)


def test_the_client_asks_for_gzip_only(
    server: FakeFeedServer, held: tuple[FeedClient, bytes]
) -> None:
    assert server.requests[0].headers["accept-encoding"] == "gzip"


# -- slow, failing and silent servers ----------------------------------------------------------


def test_requests_carry_connect_and_read_timeouts(
    server: FakeFeedServer, held: tuple[FeedClient, bytes], clock: FrozenClock
) -> None:
    client, _ = held
    server.history.commit([NEW_ENTRY], ENFORCE, later(clock))
    assert client.poll(wait_s=30).status is PollStatus.UPDATED
    timeouts = {
        r.url.path.removeprefix("/feed/v1"): r.extensions["timeout"] for r in server.requests
    }
    assert timeouts["/snapshot"]["connect"] == 10.0 and timeouts["/snapshot"]["read"] == 70.0
    # the long poll (on /delta itself): its wait plus a margin
    assert timeouts["/delta"]["read"] == 40.0


def test_a_body_that_trickles_in_is_given_up_on(
    server: FakeFeedServer,
    held: tuple[FeedClient, bytes],
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each piece arrives within the read timeout, but the whole takes longer than allowed."""
    client, copy = held
    now = [1000.0]
    monkeypatch.setattr(feedclient, "_monotonic", lambda: now[0])

    def trickle() -> Iterator[bytes]:
        for _ in range(1000):
            now[0] += 50.0  # one byte every 50 seconds
            yield b" "

    snapshot_with(server, httpx.Response(200, content=trickle()))
    result = client.poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "http"
    assert result.error is not None and "took more than 600 s" in result.error
    assert now[0] < 1000.0 + 60 + 10 + 600 + 100  # stopped soon after the deadline
    assert_kept(client, state_dir, copy)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("path", ["/delta", "/snapshot"])
def test_5xx_keeps_the_last_good_copy(
    server: FakeFeedServer,
    held: tuple[FeedClient, bytes],
    state_dir: Path,
    status: int,
    path: str,
) -> None:
    client, copy = held
    if path == "/snapshot":
        force_snapshot(server)
    server.override[path] = raw_response(b"<html>upstream down</html>", status)
    result = client.poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "http"
    assert result.error is not None and f"HTTP {status}" in result.error
    assert_kept(client, state_dir, copy)


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.RemoteProtocolError]
)
def test_a_server_that_never_answers_keeps_the_last_good_copy(
    server: FakeFeedServer,
    held: tuple[FeedClient, bytes],
    state_dir: Path,
    error: type[httpx.TransportError],
) -> None:
    client, copy = held

    def silent(request: httpx.Request) -> httpx.Response:
        raise error("no answer", request=request)

    server.override["/delta"] = silent
    result = client.poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "http"
    assert result.error is not None and error.__name__ in result.error
    assert_kept(client, state_dir, copy)


# -- pathological JSON -------------------------------------------------------------------------

HUGE_INTEGER = b'{"type":"snapshot","serial":' + b"7" * HUGE + b"}"
DEEP_LIST = b"[" * HUGE + b"]" * HUGE
DEEP_OBJECT = b'{"a":' * HUGE + b"1" + b"}" * HUGE

PATHOLOGICAL = [
    pytest.param(HUGE_INTEGER, "too many digits", id="100000-digit-integer"),
    pytest.param(DEEP_LIST, "nests too deeply", id="100000-deep-lists"),
    pytest.param(DEEP_OBJECT, "nests too deeply", id="100000-deep-objects"),
]


@pytest.mark.parametrize(("body", "message"), PATHOLOGICAL)
@pytest.mark.parametrize("path", ["/snapshot", "/delta"])
def test_pathological_json_from_the_server_is_refused(
    server: FakeFeedServer,
    held: tuple[FeedClient, bytes],
    state_dir: Path,
    body: bytes,
    message: str,
    path: str,
) -> None:
    client, copy = held
    if path == "/snapshot":
        force_snapshot(server)
    server.override[path] = raw_response(body)
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "MalformedDocument"
    assert result.error is not None and message in result.error and "\n" not in result.error
    assert_kept(client, state_dir, copy)


def test_a_huge_integer_inside_a_delta_list_is_refused(
    server: FakeFeedServer, held: tuple[FeedClient, bytes], state_dir: Path
) -> None:
    client, copy = held
    server.override["/delta"] = raw_response(b'{"deltas":[{"serial":' + b"9" * HUGE + b"}]}")
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "MalformedDocument"
    assert_kept(client, state_dir, copy)


# -- size limit and pathological JSON: files ---------------------------------------------------


@pytest.fixture
def history(clock: FrozenClock) -> FeedHistory:
    return new_history(clock.now())


@pytest.fixture
def feed(tmp_path: Path, history: FeedHistory, clock: FrozenClock) -> Path:
    path = tmp_path / "feed.json"
    path.write_bytes(snapshot_bytes(history, clock.now()))
    return path


def file_client(feed: Path, state_dir: Path, clock: FrozenClock, **kw: int) -> FeedClient:
    return FeedClient(source=str(feed), trusted=TRUSTED, state_dir=state_dir, clock=clock, **kw)


def replace(path: Path, data: bytes | None = None, *, size: int | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        if data is not None:
            out.write(data)
        if size is not None:
            out.truncate(size)  # sparse: no disk space used
    os.replace(tmp, path)


def test_a_1_gib_feed_file_is_refused_without_reading_it(
    feed: Path, state_dir: Path, clock: FrozenClock
) -> None:
    client = file_client(feed, state_dir, clock)  # the default limit
    assert client.poll().status is PollStatus.UPDATED
    copy = (state_dir / SNAPSHOT_FILE).read_bytes()
    replace(feed, size=GiB)
    tracemalloc.start()
    try:
        result = client.poll()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is PollStatus.REFUSED and result.error_kind == "DocumentTooLarge"
    assert result.error is not None and f"holds {GiB} bytes" in result.error
    assert peak < MiB
    assert_kept(client, state_dir, copy)


def test_a_feed_file_over_a_small_limit_is_refused(
    feed: Path, state_dir: Path, clock: FrozenClock
) -> None:
    size = feed.stat().st_size
    assert file_client(feed, state_dir, clock, max_bytes=size - 1).poll().error_kind == (
        "DocumentTooLarge"
    )
    assert file_client(feed, state_dir, clock, max_bytes=size).poll().status is PollStatus.UPDATED


def test_a_fifo_as_feed_file_is_unreachable_not_a_hang(
    tmp_path: Path, state_dir: Path, clock: FrozenClock
) -> None:
    fifo = tmp_path / "feed.fifo"
    os.mkfifo(fifo)
    result = file_client(fifo, state_dir, clock).poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "io"
    assert result.error is not None and "not a regular file" in result.error


@pytest.mark.parametrize(("body", "message"), PATHOLOGICAL)
def test_pathological_json_in_a_feed_file_is_refused(
    feed: Path, state_dir: Path, clock: FrozenClock, body: bytes, message: str
) -> None:
    client = file_client(feed, state_dir, clock)
    assert client.poll().status is PollStatus.UPDATED
    copy = (state_dir / SNAPSHOT_FILE).read_bytes()
    replace(feed, body)
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "MalformedDocument"
    assert result.error is not None and message in result.error
    assert_kept(client, state_dir, copy)


# -- a corrupt state.json ----------------------------------------------------------------------


@pytest.fixture
def held_dir(feed: Path, state_dir: Path, clock: FrozenClock, history: FeedHistory) -> Path:
    """A state directory holding serial 2 of the file feed."""
    history.commit([NEW_ENTRY], ENFORCE, later(clock))
    replace(feed, snapshot_bytes(history, clock.now()))
    assert file_client(feed, state_dir, clock).poll().status is PollStatus.UPDATED
    return state_dir


CORRUPT_STATE = [
    pytest.param(lambda p: p.write_bytes(b"\x00" * 37), id="zeros"),
    pytest.param(lambda p: p.write_bytes(p.read_bytes()[:20]), id="torn-write"),
    pytest.param(lambda p: p.write_text('{"format": 1, "held": "yes", "verified_at": 0}'),
                 id="not-a-held-state"),
    pytest.param(lambda p: p.write_bytes(b'{"format":' + b"1" * HUGE + b"}"), id="huge-integer"),
    pytest.param(lambda p: p.write_bytes(DEEP_LIST), id="deep-nesting"),
    pytest.param(lambda p: p.write_bytes(b""), id="empty"),
]  # fmt: skip


@pytest.mark.parametrize("corrupt", CORRUPT_STATE)
def test_a_corrupt_state_json_is_recovered_from_the_copy(
    held_dir: Path,
    feed: Path,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    corrupt: object,
) -> None:
    assert callable(corrupt)
    corrupt(held_dir / STATE_FILE)
    client = file_client(feed, held_dir, clock)
    state = client.load()
    assert state is not None and state.serial == 2
    assert "recovered serial 2 of session" in caplog.text and "state.json" in caplog.text
    # state.json is rewritten from the copy: the next start loads it without repairs.
    floor = json.loads((held_dir / STATE_FILE).read_text())["held"]
    assert (floor["serial"], floor["set_hash"]) == (2, state.set_hash)
    caplog.clear()
    again = file_client(feed, held_dir, clock)
    assert again.load() == state and "repaired" not in caplog.text


def test_the_recovery_is_reported_once_by_poll(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    (held_dir / STATE_FILE).write_bytes(b"garbage")
    client = file_client(feed, held_dir, clock)
    first = client.poll()
    assert first.status is PollStatus.UNCHANGED
    assert first.notice is not None and first.notice.startswith("repaired feed state directory: ")
    assert "recovered serial 2" in first.notice and "\n" not in first.notice
    assert client.poll().notice is None


def test_after_recovery_an_older_feed_is_still_a_rollback(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    (held_dir / STATE_FILE).write_bytes(b"garbage")
    older = new_history(clock.now() - dt.timedelta(minutes=30))  # serial 1, created earlier
    replace(feed, snapshot_bytes(older, clock.now()))
    result = file_client(feed, held_dir, clock).poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "Rollback"
    assert result.state is not None and result.state.serial == 2
    assert result.notice is not None and "recovered serial 2" in result.notice


def test_an_unreadable_state_json_is_recovered_too(
    held_dir: Path, feed: Path, clock: FrozenClock
) -> None:
    """A state.json that cannot even be read (here a directory) and cannot be rewritten."""
    (held_dir / STATE_FILE).unlink()
    (held_dir / STATE_FILE).mkdir()
    result = file_client(feed, held_dir, clock).poll()
    assert result.status is PollStatus.UNCHANGED
    assert result.state is not None and result.state.serial == 2
    assert result.notice is not None and "cannot read" in result.notice
    assert "cannot rewrite" in result.notice


@pytest.mark.parametrize(
    "copy",
    [
        pytest.param(b'{"type":"snapshot", "cut', id="copy-corrupt"),
        pytest.param(None, id="copy-missing"),
    ],
)
def test_with_the_copy_also_unusable_the_client_starts_over(
    held_dir: Path, feed: Path, clock: FrozenClock, copy: bytes | None
) -> None:
    (held_dir / STATE_FILE).write_bytes(b"garbage")
    if copy is None:
        (held_dir / SNAPSHOT_FILE).unlink()
    else:
        (held_dir / SNAPSHOT_FILE).write_bytes(copy)
    client = file_client(feed, held_dir, clock)
    assert client.load() is None
    result = client.poll()
    assert result.status is PollStatus.UPDATED
    assert result.state is not None and result.state.serial == 2
    assert result.notice is not None and "starting over with nothing held" in result.notice
    # Both files are good again.
    assert file_client(feed, held_dir, clock).load() == result.state


def test_recovery_from_a_copy_rebuilt_from_deltas(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    client = client_for(server, state_dir, clock)
    client.poll()
    serial = server.history.commit([*BASE_ENTRIES, NEW_ENTRY], ENFORCE, later(clock))
    assert client.poll().status is PollStatus.UPDATED
    assert (state_dir / SNAPSHOT_FILE).read_bytes().startswith(b'{"type":"rebuilt"')
    (state_dir / STATE_FILE).write_bytes(b"{")
    restarted = client_for(server, state_dir, clock)
    state = restarted.load()
    assert state is not None and state.serial == serial
    assert state.entries == server.history.entries
    assert restarted.poll().status is PollStatus.UNCHANGED
    assert server.paths()[-1] == "/delta"  # carried on from the recovered serial
