"""The feed server writes the static feed (ADR 0009) on each publish when
VPNREG_FEED_STATIC_DIR names a directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from tests.feed_server.conftest import Committed
from tests.feed_server.flow import bank_registration
from tests.feed_server.server import FAST, trusted
from vpnreg.clock import FrozenClock
from vpnreg.core.feed.notification import verify_notification
from vpnreg.registry.feed_static import NOTIFICATION_FILE
from vpnreg.settings import Settings
from vpnreg.web.feed import install_feed


def test_the_server_writes_the_static_feed_on_each_publish(
    committed: Committed, clock: FrozenClock, tmp_path: Path
) -> None:
    static = tmp_path / "static"
    settings = Settings(
        database_url=committed.url,
        feed_key=tmp_path / "keys" / "feed.key",
        allow_documentation_prefixes=True,
        feed_static_dir=static,
    )
    server = install_feed(FastAPI(), settings, clock=clock, options=FAST)
    try:
        asyncio.run(server.publish_now())
        keys = trusted(server)
        first = verify_notification(
            (static / NOTIFICATION_FILE).read_bytes(), trusted=keys, now=clock.now()
        )
        bank_registration(
            committed.session, committed.world, committed.config, clock.now(), "192.0.2.0/24"
        )
        committed.session.rollback()
        asyncio.run(server.publish_now())
        second = verify_notification(
            (static / NOTIFICATION_FILE).read_bytes(), trusted=keys, now=clock.now()
        )
    finally:
        server.close()
    assert (second.session_id, second.serial) == (first.session_id, first.serial + 1)
    assert [ref.serial for ref in second.deltas] == [second.serial]
    assert all((static / ref.uri).is_file() for ref in (*first.files(), *second.files()))
