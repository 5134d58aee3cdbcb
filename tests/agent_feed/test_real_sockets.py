"""The feed client over real TCP sockets on 127.0.0.1 (the other hostile-feed tests use httpx's
MockTransport): a port nobody listens on, a server that accepts and never answers, one that
hangs up, 5xx, a 1 GiB body and a deeply nested document. Each poll ends (no hang), the last
good allowlist is kept on disk and in memory, memory stays bounded, and the same client takes
the next good document when the server is sound again: it stays up."""

from __future__ import annotations

import socket
import socketserver
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.agent_feed.fakefeed import (
    BASE_ENTRIES,
    NEW_ENTRY,
    TOKEN,
    TRUSTED,
    FakeFeedServer,
    later,
    raw_response,
)
from vpnreg.agent.feedclient import FeedClient, PollStatus, Timers
from vpnreg.agent.feedstore import SNAPSHOT_FILE
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EnforcementMode, EntryTable

GiB = 1 << 30
#: The client's size limit in these tests (the documents are about 1 KB).
LIMIT = 1 << 20


class SocketFeed(socketserver.ThreadingTCPServer):
    """A real HTTP/1.1 server in front of a FakeFeedServer, with fault modes:
    "normal" (the fake answers), "silent" (reads the request, never answers), "hang-up" (closes
    without a word), "huge" (a 200 with an endless body, until the client goes away)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeFeedServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self.mode = "normal"
        self.sent = 0
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/feed/v1"


class _Handler(socketserver.StreamRequestHandler):
    server: SocketFeed

    def handle(self) -> None:
        line = self.rfile.readline(65536)
        if not line:
            return
        headers: dict[str, str] = {}
        while (header := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip()] = value.strip()
        mode = self.server.mode
        if mode == "silent":
            self.server.release.wait(120)
            return
        if mode == "hang-up":
            return
        if mode == "huge":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
            chunk = b" " * 65536
            try:
                while self.server.sent < GiB:
                    self.wfile.write(chunk)
                    self.server.sent += len(chunk)
            except OSError:
                pass  # the client hung up: what it should do
            return
        method, target, _ = line.decode("latin-1").split(" ", 2)
        request = httpx.Request(method, f"http://127.0.0.1{target}", headers=headers)
        response = self.server.fake.handle(request)
        body = response.content
        head = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
        skip = {"content-length", "content-encoding", "transfer-encoding", "connection"}
        head += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() not in skip]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        self.wfile.write("\r\n".join(head).encode("latin-1") + body)


@pytest.fixture
def feed(server: FakeFeedServer) -> Iterator[SocketFeed]:
    real = SocketFeed(server)
    thread = threading.Thread(target=real.serve_forever, daemon=True)
    thread.start()
    yield real
    real.release.set()
    real.shutdown()
    real.server_close()


def client_at(url: str, state_dir: Path, clock: FrozenClock) -> FeedClient:
    return FeedClient(
        source=url,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        # A 1 s long-poll wait: a silent server is given up on after it plus the 10 s margin.
        timers=Timers(refresh_s=1, retry_s=1, expire_s=3600),
        max_bytes=LIMIT,
    )


def assert_kept(client: FeedClient, state_dir: Path, copy: bytes) -> None:
    assert client.state is not None and client.state.serial == 1
    assert client.state.entries == EntryTable.from_entries(BASE_ENTRIES)
    assert (state_dir / SNAPSHOT_FILE).read_bytes() == copy


@pytest.fixture
def held(
    feed: SocketFeed, state_dir: Path, clock: FrozenClock
) -> Iterator[tuple[FeedClient, bytes]]:
    client = client_at(feed.url, state_dir, clock)
    assert client.poll().status is PollStatus.UPDATED
    yield client, (state_dir / SNAPSHOT_FILE).read_bytes()
    client.close()


def recovers(
    client: FeedClient, feed: SocketFeed, server: FakeFeedServer, clock: FrozenClock
) -> None:
    """The server is sound again with a new serial: the same client takes it."""
    feed.mode = "normal"
    server.override.clear()
    server.history.commit([NEW_ENTRY], EnforcementMode.enforce_all(), later(clock))
    result = client.poll()
    assert result.status is PollStatus.UPDATED, result.error
    assert client.state is not None and client.state.serial == 2


def test_a_port_nobody_listens_on_is_unreachable_and_the_held_copy_serves(
    held: tuple[FeedClient, bytes], state_dir: Path, clock: FrozenClock
) -> None:
    _, copy = held
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/feed/v1"
    restarted = client_at(dead, state_dir, clock)  # a gateway restarted with the feed down
    result = restarted.poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "http"
    assert result.error is not None and "ConnectError" in result.error
    assert_kept(restarted, state_dir, copy)
    restarted.close()


@pytest.mark.slow  # waits out the client's read timeout (1 s wait + 10 s margin)
def test_a_server_that_accepts_and_never_answers(
    feed: SocketFeed,
    server: FakeFeedServer,
    held: tuple[FeedClient, bytes],
    state_dir: Path,
    clock: FrozenClock,
) -> None:
    client, copy = held
    feed.mode = "silent"
    result = client.poll(wait_s=1)
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "http"
    assert result.error is not None and "ReadTimeout" in result.error
    assert_kept(client, state_dir, copy)
    feed.release.set()
    recovers(client, feed, server, clock)


@pytest.mark.parametrize(
    ("fault", "status", "says"),
    [
        pytest.param("hang-up", PollStatus.UNREACHABLE, "RemoteProtocolError", id="hang-up"),
        pytest.param("503", PollStatus.UNREACHABLE, "HTTP 503", id="http-503"),
        pytest.param("500", PollStatus.UNREACHABLE, "HTTP 500", id="http-500"),
        pytest.param("deep", PollStatus.REFUSED, "nests too deeply", id="100000-deep-json"),
        pytest.param("huge", PollStatus.REFUSED, "passed the limit", id="1-gib-body"),
    ],
)
def test_a_broken_server_leaves_the_held_copy_and_the_client_recovers(
    feed: SocketFeed,
    server: FakeFeedServer,
    held: tuple[FeedClient, bytes],
    state_dir: Path,
    clock: FrozenClock,
    fault: str,
    status: PollStatus,
    says: str,
) -> None:
    client, copy = held
    if fault in ("hang-up", "huge"):
        feed.mode = fault
    elif fault == "deep":
        server.override["/delta"] = raw_response(b"[" * 100_000 + b"]" * 100_000)
    else:
        server.override["/delta"] = raw_response(b"<html>down</html>", int(fault))
    tracemalloc.start()
    try:
        result = client.poll()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is status, result.error
    assert result.error is not None and says in result.error and "\n" not in result.error
    assert_kept(client, state_dir, copy)
    assert peak < 16 * LIMIT  # bounded by the limit, whatever the server sends
    if fault == "huge":
        assert feed.sent < GiB // 8  # the client hung up soon after the limit
    recovers(client, feed, server, clock)
