"""The /feed/v1 endpoints over a committed registry (SQLite and PostgreSQL): tokens, ETag/304,
gzip, deltas and resets, long polls, the scheduler, and the real FeedClient over uvicorn."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from tests.feed_server.conftest import Committed
from tests.feed_server.flow import bank_registration, registered_table, texts
from tests.feed_server.server import feed_app, serving, trusted
from tests.feed_server.timers import ReportingTimer
from tests.registry.conftest import add_user
from tests.registry.flow import act
from vpnreg.agent.feedclient import FeedClient, PollStatus, Timers
from vpnreg.clock import FrozenClock, SystemClock
from vpnreg.core.feed import (
    COMPACT_MEDIA_TYPE,
    EntryTable,
    VerifiedDelta,
    VerifiedSnapshot,
    apply_delta,
    verify_compact,
    verify_document,
)
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.web.feed import FeedOptions, FeedServer


@dataclass
class Feed:
    client: TestClient
    server: FeedServer
    reg: Committed
    clock: FrozenClock
    gateway: dict[str, str]
    regulator: dict[str, str]
    trusted: dict[str, Ed25519PublicKey]

    def approve(self, prefix: str) -> int:
        app = bank_registration(
            self.reg.session, self.reg.world, self.reg.config, self.clock.now(), prefix
        )
        return app.id

    def registered(self) -> EntryTable:
        table = registered_table(self.reg.session, self.reg.config, self.clock.now())
        self.reg.session.rollback()  # end the read: SQLite writers would wait for it
        return table

    def settle(self) -> tuple[str, int]:
        """Ask for a publish and wait until the feed holds the registered set."""
        expected = self.registered().set_hash()
        self.server.notify_changed()
        deadline = time.monotonic() + 10
        while (held := self.server.publisher.history()) is None or (
            held.entries.set_hash() != expected
        ):
            assert time.monotonic() < deadline, "the feed did not catch up"
            time.sleep(0.01)
        return self.serial()

    def serial(self) -> tuple[str, int]:
        held = self.server.publisher.history()
        assert held is not None
        return held.session_id, held.serial

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.client.get(f"/feed/v1/{path}", params=params, headers=self.gateway)


def token(reg: Committed, role: str, clock: FrozenClock) -> dict[str, str]:
    _, secret = services.create_token(
        reg.session, name=f"{role}-token", role=role, actor="cli:admin", now=clock.now()
    )
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def feed(committed: Committed, tmp_path: Path, clock: FrozenClock) -> Iterator[Feed]:
    gateway = token(committed, "gateway", clock)
    regulator = token(committed, "regulator", clock)
    app, server = feed_app(committed.url, tmp_path / "keys", clock)
    with TestClient(app) as client:
        yield Feed(client, server, committed, clock, gateway, regulator, trusted(server))


def test_only_gateway_tokens_read_the_feed(feed: Feed) -> None:
    session_id, serial = feed.serial()
    paths = [
        ("snapshot", {}),
        ("delta", {"since": serial, "session": session_id}),
        ("notify", {"since": serial, "session": session_id, "wait": 0}),
    ]
    for path, params in paths:
        url = f"/feed/v1/{path}"
        anonymous = feed.client.get(url, params=params)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        junk = feed.client.get(url, params=params, headers={"Authorization": "Bearer vpnreg_x"})
        assert junk.status_code == 401
        assert feed.client.get(url, params=params, headers=feed.regulator).status_code == 403
        assert feed.get(path, **params).status_code in (200, 204)
    revoked_id = services.list_tokens(feed.reg.session)[0].id
    services.revoke_token(
        feed.reg.session, token_id=revoked_id, actor="cli:admin", now=feed.clock.now()
    )
    assert feed.get("snapshot").status_code == 401


def test_snapshot_has_etag_304_and_gzip_and_verifies(feed: Feed) -> None:
    for i in range(8):
        feed.approve(f"192.0.2.{i * 16}/28")
    session_id, serial = feed.settle()

    zipped = feed.client.get(
        "/feed/v1/snapshot", headers={**feed.gateway, "Accept-Encoding": "gzip"}
    )
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] == f'"{session_id}-{serial}"'
    doc = verify_document(zipped.content, trusted=feed.trusted, now=feed.clock.now())
    assert isinstance(doc, VerifiedSnapshot)
    assert (doc.session_id, doc.serial) == (session_id, serial)
    assert doc.entries == feed.registered() and len(doc.entries) == 8
    assert doc.expires == feed.clock.now() + dt.timedelta(days=1)

    plain = feed.client.get(
        "/feed/v1/snapshot", headers={**feed.gateway, "Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    assert plain.content == zipped.content

    same = feed.client.get(
        "/feed/v1/snapshot", headers={**feed.gateway, "If-None-Match": zipped.headers["etag"]}
    )
    assert (same.status_code, same.content, same.headers["etag"]) == (
        304,
        b"",
        zipped.headers["etag"],
    )
    stale = feed.client.get(
        "/feed/v1/snapshot", headers={**feed.gateway, "If-None-Match": f'"{session_id}-1"'}
    )
    assert stale.status_code == 200


def test_snapshot_is_compact_when_accept_prefers_it(feed: Feed) -> None:
    for i in range(3):
        feed.approve(f"192.0.2.{i * 16}/28")
    session_id, serial = feed.settle()
    json_form = feed.get("snapshot")
    asks = {**feed.gateway, "Accept": f"{COMPACT_MEDIA_TYPE}, application/json;q=0.5"}
    answer = feed.client.get("/feed/v1/snapshot", headers=asks)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == COMPACT_MEDIA_TYPE
    assert answer.headers["etag"] == f'"{session_id}-{serial}-compact"'
    assert "Accept" in answer.headers["vary"]
    snap = verify_compact(answer.content, trusted=feed.trusted, now=feed.clock.now())
    assert (snap.session_id, snap.serial) == (session_id, serial)
    assert snap.entries == feed.registered() and len(snap.entries) == 3
    # the same signed state as the JSON form, which clients that do not ask still get
    assert json_form.headers["content-type"] == "application/json"
    assert snap.document() == json_form.content
    for accept in ("application/json", "*/*", f"application/json, {COMPACT_MEDIA_TYPE};q=0.5"):
        other = feed.client.get("/feed/v1/snapshot", headers={**feed.gateway, "Accept": accept})
        assert other.headers["content-type"] == "application/json", accept
    # either form's tag names the state: 304
    for tag in (f'"{session_id}-{serial}"', f'"{session_id}-{serial}-compact"'):
        same = feed.client.get("/feed/v1/snapshot", headers={**asks, "If-None-Match": tag})
        assert same.status_code == 304
    spec = feed.client.get("/openapi.json").json()
    content = spec["paths"]["/feed/v1/snapshot"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", COMPACT_MEDIA_TYPE}


def test_delta_brings_an_old_serial_to_the_registered_set_or_answers_reset(feed: Feed) -> None:
    session_id, first = feed.serial()
    snap = verify_document(feed.get("snapshot").content, trusted=feed.trusted, now=feed.clock.now())
    assert isinstance(snap, VerifiedSnapshot)
    assert feed.get("delta", since=first, session=session_id).json() == {"deltas": []}

    gone = feed.approve("198.51.100.0/24")
    feed.approve("203.0.113.0/24")
    _, mid = feed.settle()
    act("revoke", feed.reg.session, application_id=gone, actor=feed.reg.world.regulator,
        reason="closed", now=feed.clock.now(), config=feed.reg.config,
    )  # fmt: skip
    _, last = feed.settle()
    assert first < mid < last

    body = feed.get("delta", since=first, session=session_id).json()
    assert len(body["deltas"]) == 1  # merged: one signature for the whole way
    raw = httpx.Response(200, json=body["deltas"][0]).content
    delta = verify_document(raw, trusted=feed.trusted, now=feed.clock.now())
    assert isinstance(delta, VerifiedDelta)
    assert (delta.previous_serial, delta.serial) == (first, last)
    # Added then removed within the range never travels.
    assert texts(delta.added) == [("203.0.113.0/24", (), gone + 1)]
    assert len(delta.removed) == 0
    after = apply_delta(snap.state(), delta)
    assert after.entries == feed.registered()

    for params in ({"since": first, "session": "0" * 32}, {"since": last + 5}, {"since": 0}):
        params.setdefault("session", session_id)
        assert feed.get("delta", **params).json() == {
            "reset": True,
            "session_id": session_id,
            "serial": last,
        }
    # Beyond the kept deltas (max_deltas=3) a client must take a snapshot.
    for i in range(3):
        feed.approve(f"192.0.2.{i * 64}/26")
        feed.settle()
    assert feed.get("delta", since=first, session=session_id).json()["reset"] is True
    assert len(feed.get("delta", since=last, session=session_id).json()["deltas"]) == 1


def test_a_user_bound_token_reads_the_feed_only_while_its_user_is_a_gateway(feed: Feed) -> None:
    session, now = feed.reg.session, feed.clock.now()
    owner = add_user(session, "gw-operator", Role.GATEWAY, now)
    token_row, secret = services.create_token(
        session, name="gw-robot", user_id=owner.id, actor="cli:admin", now=now
    )
    assert token_row.role == "gateway"
    headers = {"Authorization": f"Bearer {secret}"}
    assert feed.client.get("/feed/v1/snapshot", headers=headers).status_code == 200

    # The token row still says "gateway"; what counts is its user's role now.
    services.set_user_role(
        session, user_id=owner.id, role="isp", isp_id=feed.reg.world.isp, actor="cli:admin",
        now=now,
    )  # fmt: skip
    refused = feed.client.get("/feed/v1/snapshot", headers=headers)
    assert refused.status_code == 403 and "isp" in refused.json()["detail"]

    services.set_user_active(session, user_id=owner.id, active=False, actor="cli:admin", now=now)
    assert feed.client.get("/feed/v1/snapshot", headers=headers).status_code == 401


def signed(
    feed: Feed, path: str, **params: object
) -> tuple[bytes, VerifiedSnapshot | VerifiedDelta]:
    """The body served at `path` (a snapshot, or the one delta of a delta answer), verified."""
    response = feed.get(path, **params)
    assert response.status_code == 200, response.text
    raw = response.content
    if path == "delta":
        raw = httpx.Response(200, json=response.json()["deltas"][0]).content
    return response.content, verify_document(raw, trusted=feed.trusted, now=feed.clock.now())


def test_a_signed_snapshot_is_reused_until_half_its_validity_is_gone(feed: Feed) -> None:
    feed.approve("192.0.2.0/24")
    session_id, serial = feed.settle()
    first_at = feed.clock.now()
    body, doc = signed(feed, "snapshot")
    assert doc.expires == first_at + dt.timedelta(days=1)

    feed.clock.advance(dt.timedelta(hours=12) - dt.timedelta(seconds=1))
    again, _ = signed(feed, "snapshot")
    assert again == body  # not signed again: the same expiry, the same bytes

    feed.clock.advance(dt.timedelta(seconds=1))  # half of the day's validity has gone
    renewed, doc = signed(feed, "snapshot")
    assert renewed != body
    assert (doc.session_id, doc.serial) == (session_id, serial)
    assert doc.expires == feed.clock.now() + dt.timedelta(days=1)
    assert signed(feed, "snapshot")[0] == renewed

    feed.approve("198.51.100.0/24")
    feed.settle()
    _, doc = signed(feed, "snapshot")  # a new serial is signed at once
    assert isinstance(doc, VerifiedSnapshot)
    assert doc.serial == serial + 1 and len(doc.entries) == 2
    assert doc.expires == feed.clock.now() + dt.timedelta(days=1)


def test_a_signed_delta_is_reused_per_since_until_half_its_validity_is_gone(feed: Feed) -> None:
    session_id, first = feed.serial()
    feed.approve("192.0.2.0/24")
    _, second = feed.settle()
    body, doc = signed(feed, "delta", since=first, session=session_id)
    assert isinstance(doc, VerifiedDelta) and (doc.previous_serial, doc.serial) == (first, second)

    feed.clock.advance(dt.timedelta(hours=1))
    assert signed(feed, "delta", since=first, session=session_id)[0] == body

    feed.approve("198.51.100.0/24")
    _, third = feed.settle()
    from_first, doc = signed(feed, "delta", since=first, session=session_id)
    assert isinstance(doc, VerifiedDelta) and (doc.previous_serial, doc.serial) == (first, third)
    assert doc.expires == feed.clock.now() + dt.timedelta(days=1)
    from_second, doc = signed(feed, "delta", since=second, session=session_id)
    assert isinstance(doc, VerifiedDelta) and (doc.previous_serial, doc.serial) == (second, third)
    assert len(doc.added) == 1 and from_second != from_first

    feed.clock.advance(dt.timedelta(hours=11))
    assert signed(feed, "delta", since=second, session=session_id)[0] == from_second
    feed.clock.advance(dt.timedelta(hours=1))
    renewed, doc = signed(feed, "delta", since=second, session=session_id)
    assert renewed != from_second
    assert doc.expires == feed.clock.now() + dt.timedelta(days=1)


def test_the_real_feed_client_over_uvicorn_holds_the_registry_set(
    committed: Committed, tmp_path: Path
) -> None:
    clock = SystemClock()
    gateway = token(committed, "gateway", FrozenClock(clock.now()))["Authorization"].split()[1]
    bank_registration(committed.session, committed.world, committed.config, clock.now(),
                      "192.0.2.0/24", ["198.51.100.7/32"])  # fmt: skip
    app, server = feed_app(committed.url, tmp_path / "keys", clock)
    with serving(app) as base:
        client = FeedClient(
            source=f"{base}/feed/v1",
            trusted=trusted(server),
            state_dir=tmp_path / "state",
            clock=clock,
            token=gateway,
            timers=Timers(refresh_s=5),
        )
        with client:
            first = client.poll()
            assert first.status is PollStatus.UPDATED, first.error
            assert client.state is not None
            expected = registered_table(committed.session, committed.config, clock.now())
            committed.session.rollback()
            assert client.state.set_hash == expected.set_hash()

            bank_registration(committed.session, committed.world, committed.config,
                              clock.now(), "2001:db8::/48")  # fmt: skip
            second = client.poll(wait_s=5)
            assert second.status is PollStatus.UPDATED, second.error
            expected = registered_table(committed.session, committed.config, clock.now())
            committed.session.rollback()
            assert client.state.set_hash == expected.set_hash()
            assert client.state.serial == first.state.serial + 1 if first.state else False
            assert texts(client.state.entries) == texts(expected)


@pytest.mark.parametrize("yields", range(5))
def test_shutdown_right_after_a_notify_stops_the_scheduler(
    committed: Committed, tmp_path: Path, clock: FrozenClock, yields: int
) -> None:
    """A POST's notify just before shutdown once made the shutdown wait forever (Python 3.11's
    wait_for swallowed the cancel); the window is a few loop turns wide, so try each."""
    quiet = FeedOptions(check_interval_s=3600, publish_interval_s=3600, max_wait_s=10, max_deltas=3)
    timer = ReportingTimer()
    _, server = feed_app(committed.url, tmp_path / "keys", clock, quiet, timer=timer)

    async def start_notify_stop() -> None:
        async with server.lifespan(None):
            await timer.waiting.wait()  # the scheduler now waits for a wake-up
            server.notify_changed()
            for _ in range(yields):
                await asyncio.sleep(0)

    started = time.monotonic()
    asyncio.run(asyncio.wait_for(start_notify_stop(), timeout=10))
    assert time.monotonic() - started < 5, "the shutdown waited for the scheduler"
