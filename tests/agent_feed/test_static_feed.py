"""The static feed (ADR 0009): the writer (vpnreg.registry.feed_static) and the client reading
a directory (the same FeedClient state machine as the API's feed)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent_feed.fakefeed import (
    KEY,
    NEW_ENTRY,
    OTHER_KEY,
    SESSION,
    TRUSTED,
    later,
    new_history,
    streamed,
)
from vpnreg.agent.feedclient import FeedClient, PollStatus, Timers
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import (
    AllowlistEntry,
    BadSignature,
    EntryTable,
    FeedHistory,
    MalformedDocument,
    TruncatedDocument,
    UnsignedDocument,
    UnsupportedVersion,
    VerifiedSnapshot,
    verify_document,
)
from vpnreg.core.feed.notification import (
    FileRef,
    Notification,
    sign_notification,
    verify_notification,
)
from vpnreg.registry.feed_static import (
    NOTIFICATION_FILE,
    StaticFeedOptions,
    StaticWrite,
    write_static_feed,
)

#: The JSON files of ADR 0009 alone; the compact twins (ADR 0011) are tested in
#: test_compact_snapshot.py.
OPTIONS = StaticFeedOptions(
    validity=dt.timedelta(days=1), resign_after=0.5, grace=dt.timedelta(hours=1), compact=False
)


def publish(directory: Path, history: FeedHistory, clock: FrozenClock) -> StaticWrite:
    return write_static_feed(directory, history, key=KEY, now=clock.now(), options=OPTIONS)


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def add(history: FeedHistory, clock: FrozenClock, *entries: AllowlistEntry) -> None:
    history.commit(
        history.entries.union(EntryTable.from_entries(entries)), history.mode, later(clock)
    )


def remove(history: FeedHistory, clock: FrozenClock, *entries: AllowlistEntry) -> None:
    history.commit(
        history.entries.difference(EntryTable.from_entries(entries)), history.mode, later(clock)
    )


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    return tmp_path / "static"


@pytest.fixture
def history(clock: FrozenClock) -> FeedHistory:
    return new_history(clock.now())


@pytest.fixture
def client(feed_dir: Path, tmp_path: Path, clock: FrozenClock) -> FeedClient:
    return FeedClient(
        source=str(feed_dir),
        trusted=TRUSTED,
        state_dir=tmp_path / "state",
        clock=clock,
        timers=Timers(refresh_s=60, retry_s=10, expire_s=3600),
    )


# -- the writer ----------------------------------------------------------------------------------


def test_writes_a_signed_notification_naming_the_gzipped_snapshot(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    done = publish(feed_dir, history, clock)
    raw = (feed_dir / NOTIFICATION_FILE).read_bytes()
    note = verify_notification(raw, trusted=TRUSTED, now=clock.now())
    assert (note.session_id, note.serial, note.deltas) == (history.session_id, 1, ())
    assert note.snapshot.uri.startswith("snapshot-1-") and note.snapshot.uri.endswith(".json.gz")
    data = (feed_dir / note.snapshot.uri).read_bytes()
    assert note.snapshot.matches(data)
    doc = verify_document(gzip.decompress(data), trusted=TRUSTED, now=clock.now())
    assert isinstance(doc, VerifiedSnapshot)
    assert (doc.serial, doc.set_hash) == (1, history.entries.set_hash())
    assert done.replaced and done.written == (note.snapshot.uri,)


def test_each_change_adds_a_delta_and_files_are_never_rewritten(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    publish(feed_dir, history, clock)
    add(history, clock, NEW_ENTRY)
    publish(feed_dir, history, clock)
    before = files(feed_dir)
    remove(history, clock, NEW_ENTRY)
    publish(feed_dir, history, clock)
    note = verify_notification(
        (feed_dir / NOTIFICATION_FILE).read_bytes(), trusted=TRUSTED, now=clock.now()
    )
    assert [ref.serial for ref in note.deltas] == [2, 3]
    after = files(feed_dir)
    # every file but the notification keeps its bytes; none vanished within the grace period
    for name, data in before.items():
        if name != NOTIFICATION_FILE:
            assert after[name] == data
    assert {ref.uri for ref in note.files()} <= set(after)


def test_nothing_changed_leaves_the_notification_alone(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    publish(feed_dir, history, clock)
    before = files(feed_dir)
    later(clock, 3600)
    done = publish(feed_dir, history, clock)
    assert not done.replaced and done.written == () and files(feed_dir) == before


def test_documents_are_re_signed_as_new_files_once_half_their_validity_is_gone(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    first = publish(feed_dir, history, clock).notification
    later(clock, 13 * 3600)
    done = publish(feed_dir, history, clock)
    assert done.replaced and done.notification.expires > first.expires
    assert done.notification.snapshot.uri != first.snapshot.uri
    # the old snapshot stays for the grace period (a cached notification may still name it)
    assert (feed_dir / first.snapshot.uri).exists()


def test_old_files_are_removed_only_after_the_grace_period(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    first = publish(feed_dir, history, clock).notification
    add(history, clock, NEW_ENTRY)
    dropped_at = clock.now()
    publish(feed_dir, history, clock)
    clock.set(dropped_at + OPTIONS.grace - dt.timedelta(seconds=1))
    assert publish(feed_dir, history, clock).removed == ()
    assert (feed_dir / first.snapshot.uri).exists()
    clock.set(dropped_at + OPTIONS.grace + dt.timedelta(seconds=1))
    assert publish(feed_dir, history, clock).removed == (first.snapshot.uri,)
    assert not (feed_dir / first.snapshot.uri).exists()


def test_other_files_in_the_directory_are_left_alone(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    feed_dir.mkdir()
    (feed_dir / "index.html").write_text("hello")
    publish(feed_dir, history, clock)
    later(clock, 10 * 24 * 3600)
    publish(feed_dir, history, clock)
    assert (feed_dir / "index.html").read_text() == "hello"


# -- the reader ----------------------------------------------------------------------------------


def state_files(client: FeedClient, tmp_path: Path) -> dict[str, bytes]:
    return files(tmp_path / "state")


def test_pulls_the_snapshot_then_follows_deltas(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient
) -> None:
    publish(feed_dir, history, clock)
    first = client.poll()
    assert first.status is PollStatus.UPDATED and first.state is not None
    assert first.state.serial == 1
    assert client.poll().status is PollStatus.UNCHANGED
    add(history, clock, NEW_ENTRY)
    note = publish(feed_dir, history, clock).notification
    # without the new snapshot, only the delta can bring the client to serial 2
    (feed_dir / note.snapshot.uri).unlink()
    result = client.poll()
    assert result.status is PollStatus.UPDATED and result.state is not None
    assert (result.state.serial, result.state.set_hash) == (2, history.entries.set_hash())


def test_a_missing_delta_means_the_snapshot(
    feed_dir: Path, clock: FrozenClock, client: FeedClient
) -> None:
    history = new_history(clock.now(), max_deltas=1)
    publish(feed_dir, history, clock)
    assert client.poll().status is PollStatus.UPDATED
    add(history, clock, NEW_ENTRY)
    remove(history, clock, NEW_ENTRY)
    note = publish(feed_dir, history, clock).notification
    assert [ref.serial for ref in note.deltas] == [3]  # serial 2 is not kept: 1 -> 3 needs it
    result = client.poll()
    assert result.status is PollStatus.UPDATED and result.state is not None
    assert result.state.serial == 3


def test_a_listed_delta_file_missing_falls_back_to_the_snapshot(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient
) -> None:
    publish(feed_dir, history, clock)
    client.poll()
    add(history, clock, NEW_ENTRY)
    note = publish(feed_dir, history, clock).notification
    (feed_dir / note.deltas[-1].uri).unlink()
    result = client.poll()
    assert result.status is PollStatus.UPDATED and result.state is not None
    assert result.state.serial == 2


def test_a_tampered_notification_is_refused_and_nothing_is_written(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient, tmp_path: Path
) -> None:
    publish(feed_dir, history, clock)
    client.poll()
    held = state_files(client, tmp_path)
    add(history, clock, NEW_ENTRY)
    publish(feed_dir, history, clock)
    path = feed_dir / NOTIFICATION_FILE
    body = json.loads(path.read_bytes())
    body["set_hash"] = "0" * 64  # a set the registry never signed
    path.write_text(json.dumps(body))
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "BadSignature"
    assert result.state is not None and result.state.serial == 1
    assert state_files(client, tmp_path) == held


def test_a_notification_signed_by_another_key_is_refused(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient, tmp_path: Path
) -> None:
    note = publish(feed_dir, history, clock).notification
    (feed_dir / NOTIFICATION_FILE).write_bytes(sign_notification(note, OTHER_KEY))
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "UnknownKey"
    assert not (tmp_path / "state").exists()


def test_a_file_that_does_not_match_its_hash_is_refused_before_parsing(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient, tmp_path: Path
) -> None:
    publish(feed_dir, history, clock)
    client.poll()
    held = state_files(client, tmp_path)
    add(history, clock, NEW_ENTRY)
    note = publish(feed_dir, history, clock).notification
    # a validly signed document, but not the one the notification names
    (feed_dir / note.deltas[-1].uri).write_bytes((feed_dir / note.snapshot.uri).read_bytes())
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "HashMismatch"
    assert state_files(client, tmp_path) == held


def test_a_corrupt_snapshot_file_is_refused(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient, tmp_path: Path
) -> None:
    note = publish(feed_dir, history, clock).notification
    (feed_dir / note.snapshot.uri).write_bytes(b"\x1f\x8b not gzip")
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "HashMismatch"
    assert not (tmp_path / "state").exists()


def test_an_older_notification_is_refused_as_a_rollback(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient, tmp_path: Path
) -> None:
    publish(feed_dir, history, clock)
    old = (feed_dir / NOTIFICATION_FILE).read_bytes()
    add(history, clock, NEW_ENTRY)
    publish(feed_dir, history, clock)
    assert client.poll().state is not None
    held = state_files(client, tmp_path)
    (feed_dir / NOTIFICATION_FILE).write_bytes(old)  # a replayed, validly signed notification
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "Rollback"
    assert result.state is not None and result.state.serial == 2
    assert state_files(client, tmp_path) == held


def test_an_expired_notification_is_refused(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient
) -> None:
    publish(feed_dir, history, clock)
    later(clock, 2 * 24 * 3600)
    result = client.poll()
    assert result.status is PollStatus.REFUSED and result.error_kind == "Expired"


def test_a_missing_snapshot_file_leaves_the_state_directory_alone(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock, client: FeedClient, tmp_path: Path
) -> None:
    note = publish(feed_dir, history, clock).notification
    (feed_dir / note.snapshot.uri).unlink()
    result = client.poll()
    assert result.status is PollStatus.UNREACHABLE and result.error_kind == "io"
    assert not (tmp_path / "state").exists()


def test_a_notification_naming_a_path_outside_its_directory_is_malformed(
    feed_dir: Path, history: FeedHistory, clock: FrozenClock
) -> None:
    import dataclasses

    note = publish(feed_dir, history, clock).notification
    bad = dataclasses.replace(
        note, snapshot=dataclasses.replace(note.snapshot, uri="../etc/passwd")
    )
    with pytest.raises(Exception, match="plain file name"):
        sign_notification(bad, KEY)


def test_notification_round_trip_and_bit_flip(clock: FrozenClock, history: FeedHistory) -> None:
    now = clock.now()
    ref = FileRef(1, "snapshot-1-0123456789abcdef.json.gz", "ab" * 32, now + dt.timedelta(days=1))
    note = Notification(
        session_id=history.session_id,
        serial=1,
        set_hash=history.entries.set_hash(),
        created=now,
        expires=now + dt.timedelta(days=1),
        snapshot=ref,
    )
    raw = sign_notification(note, KEY)
    assert verify_notification(raw, trusted=TRUSTED, now=now) == note
    flipped = raw.replace(b'"hash":"abab', b'"hash":"bbab')
    with pytest.raises(BadSignature):
        verify_notification(flipped, trusted=TRUSTED, now=now)


# -- the reader over HTTP (an in-memory web server over the directory) --------------------------


class StaticWeb:
    """Serves a directory as a plain web server would: ETag and Last-Modified per file, 304 on
    a matching If-None-Match; records (status, path, request headers) of every request."""

    base = "https://cdn.example/feed/"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[tuple[int, str, httpx.Headers]] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: streamed(self.handle(request)))

    def handle(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.removeprefix("/feed/")
        path = self.root / name
        if "/" in name or not path.is_file():
            status, response = 404, httpx.Response(404)
        else:
            data = path.read_bytes()
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            if request.headers.get("if-none-match") == etag:
                status, response = 304, httpx.Response(304, headers={"ETag": etag})
            else:
                modified = "Thu, 15 Jan 2026 09:00:00 GMT"
                headers = {"ETag": etag, "Last-Modified": modified}
                status, response = 200, httpx.Response(200, content=data, headers=headers)
        self.log.append((status, name, request.headers))
        return response


@pytest.fixture
def web(feed_dir: Path) -> StaticWeb:
    return StaticWeb(feed_dir)


@pytest.fixture
def http_client(web: StaticWeb, tmp_path: Path, clock: FrozenClock) -> Iterator[FeedClient]:
    with FeedClient(
        source=web.base + NOTIFICATION_FILE,
        trusted=TRUSTED,
        state_dir=tmp_path / "state",
        clock=clock,
        transport=web.transport(),
        timers=Timers(refresh_s=60, retry_s=10, expire_s=3600),
        compact=False,
    ) as made:
        yield made


def test_http_notification_is_asked_for_conditionally(
    feed_dir: Path,
    history: FeedHistory,
    clock: FrozenClock,
    web: StaticWeb,
    http_client: FeedClient,
) -> None:
    publish(feed_dir, history, clock)
    assert http_client.poll().status is PollStatus.UPDATED
    assert [(s, n.split("-")[0]) for s, n, _ in web.log] == [
        (200, NOTIFICATION_FILE),
        (200, "snapshot"),
    ]
    assert http_client.poll().status is PollStatus.UNCHANGED
    status, _, headers = web.log[-1]
    assert status == 304 and headers["if-modified-since"] == "Thu, 15 Jan 2026 09:00:00 GMT"
    add(history, clock, NEW_ENTRY)
    publish(feed_dir, history, clock)
    result = http_client.poll()
    assert result.status is PollStatus.UPDATED and result.state is not None
    assert result.state.serial == 2
    assert [n.split("-")[:2] for _, n, _ in web.log[-2:]] == [[NOTIFICATION_FILE], ["delta", "2"]]


def test_http_validators_are_kept_only_after_a_successful_poll(
    feed_dir: Path,
    history: FeedHistory,
    clock: FrozenClock,
    web: StaticWeb,
    http_client: FeedClient,
    tmp_path: Path,
) -> None:
    publish(feed_dir, history, clock)
    http_client.poll()
    add(history, clock, NEW_ENTRY)
    note = publish(feed_dir, history, clock).notification
    good = (feed_dir / note.deltas[-1].uri).read_bytes()
    (feed_dir / note.deltas[-1].uri).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    held = state_files(http_client, tmp_path)
    assert http_client.poll().status is PollStatus.REFUSED
    assert state_files(http_client, tmp_path) == held
    # the refused notification's ETag was not kept: the next poll reads it again, not a 304
    (feed_dir / note.deltas[-1].uri).write_bytes(good)
    result = http_client.poll()
    assert result.status is PollStatus.UPDATED and result.state is not None
    assert result.state.serial == 2


def _edited(note: Notification, edit: Callable[[dict[str, Any]], object]) -> bytes:
    body = json.loads(sign_notification(note, KEY))
    edit(body)
    return json.dumps(body).encode()


def _note(now: dt.datetime) -> Notification:
    refs = [
        FileRef(s, f"delta-{s}-{s:016x}.json.gz", f"{s:064x}", now + dt.timedelta(days=1))
        for s in (2, 3)
    ]
    snapshot = FileRef(3, "snapshot-3-0123456789abcdef.json.gz", "cd" * 32, refs[0].expires)
    return Notification(SESSION, 3, "ef" * 32, now, now + dt.timedelta(days=1), snapshot, (*refs,))


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda b: b.update(version=2), UnsupportedVersion, "notification version 2"),
        (lambda b: b.update(version="1"), MalformedDocument, "version must be an integer"),
        (lambda b: b.pop("signature"), UnsignedDocument, "no key_id or no signature"),
        (lambda b: b.update(extra=1), MalformedDocument, "unexpected ['extra']"),
        (lambda b: b.update(type="snapshot"), MalformedDocument, "not a notification"),
        (lambda b: b["snapshot"].update(uri="../snapshot.json.gz"), MalformedDocument,
         "plain file name"),
        (lambda b: b["snapshot"].update(uri=".hidden"), MalformedDocument, "plain file name"),
        (lambda b: b["snapshot"].update(hash="AB" * 32), MalformedDocument, "lowercase hex"),
        (lambda b: b["snapshot"].update(serial=2), MalformedDocument, "not of its serial"),
        (lambda b: b["deltas"].pop(0), BadSignature, "does not verify"),
        (lambda b: b["deltas"].pop(), MalformedDocument, "end at its serial"),
        (lambda b: b["deltas"].reverse(), MalformedDocument, "consecutive"),
        (lambda b: b["deltas"][0].update(expires="2027-01-01"), MalformedDocument, "UTC time"),
        (lambda b: b.update(expires=b["created"]), MalformedDocument, "after its created"),
    ],
    ids=[
        "future-version", "version-text", "unsigned", "extra-field", "other-type", "path-up",
        "hidden-file", "uppercase-hash", "snapshot-serial", "delta-dropped", "deltas-short",
        "deltas-reversed", "bad-time", "expires-at-created",
    ],
)  # fmt: skip
def test_bad_notifications_are_refused(
    clock: FrozenClock, edit: Callable[[dict[str, Any]], object], error: type, message: str
) -> None:
    raw = _edited(_note(clock.now()), edit)
    with pytest.raises(error) as caught:
        verify_notification(raw, trusted=TRUSTED, now=clock.now())
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "error"),
    [(b'{"type": "notification", "serial', TruncatedDocument), (b"[1, 2]", MalformedDocument),
     (b"\xff", MalformedDocument)],
    ids=["truncated", "not-an-object", "not-utf8"],
)  # fmt: skip
def test_notifications_that_are_not_json_objects_are_refused(
    clock: FrozenClock, raw: bytes, error: type
) -> None:
    with pytest.raises(error):
        verify_notification(raw, trusted=TRUSTED, now=clock.now())
