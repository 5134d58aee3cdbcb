"""The static feed end to end: `vpnreg feed publish --to DIR` (a real process on a real
registry), a real nginx serving DIR, and gateways pulling it (`vpnreg feed pull --feed URL`, and
the FeedClient with its conditional requests)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.feed_server.flow import bank_registration
from tests.feed_server.test_cli import Cli
from tests.fixtures.nginx import Nginx, serve_directory
from tests.registry.conftest import build_world, make_config
from vpnreg.agent.feedclient import FeedClient, PollStatus, load_public_keys
from vpnreg.clock import SystemClock
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.feed_static import NOTIFICATION_FILE

#: Real vpnreg and nginx processes.
pytestmark = pytest.mark.slow


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path) -> Cli:
    upgrade(sqlite_url)
    return Cli(tmp_path, sqlite_url)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Nginx]:
    root = tmp_path / "www"
    (root / "feed").mkdir(parents=True)
    with serve_directory(root, tmp_path / "nginx") as server:
        yield server


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_gateways_pull_the_static_feed_from_nginx(cli: Cli, web: Nginx, tmp_path: Path) -> None:
    engine = make_engine(cli.url)
    config = make_config()
    now = SystemClock().now()
    feed_dir = web.root / "feed"
    try:
        with make_session_factory(engine)() as session:
            world = build_world(session, now, config)
            bank_registration(session, world, config, now, "192.0.2.0/24")
        published = cli("feed", "publish", "--to", str(feed_dir))
        assert published.code == 0, published.err
        assert f"static feed: {feed_dir} serial 1" in published.out
        url = web.url("feed/" + NOTIFICATION_FILE)
        trust = str(cli.where / "keys" / "feed.pub")
        state = cli.where / "state"

        pulled = cli("feed", "pull", "--feed", url, "--trust", trust, "--state-dir", str(state))
        assert pulled.code == 0, pulled.err
        assert "serial 1, 1 entries" in pulled.out and "(updated)" in pulled.out
        assert len(pulled.out.strip().splitlines()) == 1

        # a long-running gateway: the second look at an unchanged feed is a 304
        client = FeedClient(
            source=url,
            trusted=load_public_keys([Path(trust)]),
            state_dir=tmp_path / "gateway",
            clock=SystemClock(),
        )
        with client:
            assert client.poll().status is PollStatus.UPDATED
            assert client.poll().status is PollStatus.UNCHANGED
            # the pull and the first poll: notification and snapshot each; then one 304
            answered = web.requests(at_least=5)
            assert len(answered) == 5
            assert answered[-1] == (304, "/feed/" + NOTIFICATION_FILE)

            with make_session_factory(engine)() as session:
                bank_registration(session, world, config, SystemClock().now(), "198.51.100.0/24")
            assert cli("feed", "publish", "--to", str(feed_dir)).code == 0
            seen = len(answered)
            result = client.poll()
            assert result.status is PollStatus.UPDATED and result.state is not None
            assert (result.state.serial, len(result.state.entries)) == (2, 2)
            fetched = [uri for _, uri in web.requests(at_least=seen + 2)[seen:]]
            assert fetched[0] == "/feed/" + NOTIFICATION_FILE
            assert [u.split("/")[-1].split("-")[:2] for u in fetched[1:]] == [["delta", "2"]]

        pulled = cli("feed", "pull", "--feed", url, "--trust", trust, "--state-dir", str(state))
        assert pulled.code == 0, pulled.err
        assert "serial 2, 2 entries" in pulled.out and "(updated)" in pulled.out

        # a tampered notification: refused, one line, the state directory untouched
        held = files(state)
        notification = feed_dir / NOTIFICATION_FILE
        body = json.loads(notification.read_bytes())
        body["serial"], body["snapshot"]["serial"] = 3, 3
        body["deltas"] = []
        notification.write_text(json.dumps(body))
        refused = cli("feed", "pull", "--feed", url, "--trust", trust, "--state-dir", str(state))
        assert refused.code == 1 and "BadSignature" in refused.err
        assert len(refused.err.strip().splitlines()) == 1
        assert files(state) == held
    finally:
        engine.dispose()
