"""PostgreSQL LISTEN/NOTIFY between the processes of one registry (ADR 0016).

Two channels of its own, and a third it listens to for the web app's token cache:

- `CHANGED_CHANNEL` is sent by every audited change (`notify_changed`, called by the audit chain
  in the change's own transaction, so PostgreSQL delivers it only when the change commits, and
  once per transaction however many events it wrote): whoever publishes the feed wakes at once
  instead of at its next periodic check. The API, the portal, the CLI and `vpnreg radius`'
  binding reports all write through the audit chain, so all of them wake it.
- `FEED_CHANNEL` is sent by the publisher after it stored a new serial (payload
  "session:serial"): every other server process loads that serial and answers its long polls.
- `CREDENTIALS_CHANNEL` (vpnreg.registry.credential_changes) is sent by a transaction that
  revokes a token or changes a user: every server process forgets the tokens it has checked.

`FeedListener` is the receiving end: a daemon thread with its own connection that calls back
on every notification, and once more after each reconnection (notifications sent while it was
away are lost; the callback catches up). SQLite has no NOTIFY: nothing is sent, and a server
notices changes made by other processes at its periodic check. Neither has a connection pooler
in transaction mode (PgBouncer's), which cannot carry LISTEN: there the server's listener is
turned off (VPNREG_FEED_LISTEN=0) and the periodic check does the work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from vpnreg.registry.credential_changes import CREDENTIALS_CHANNEL

__all__ = [
    "CHANGED_CHANNEL",
    "FEED_CHANNEL",
    "FeedListener",
    "connect_args",
    "notify_changed",
    "uses_notify",
]

_LOG = logging.getLogger(__name__)
CHANGED_CHANNEL = "vpnreg_changed"
FEED_CHANNEL = "vpnreg_feed"
#: Seconds between attempts to reconnect a lost listening connection.
RECONNECT_S = 1.0
#: Longest wait for a notification before the thread looks whether it should stop.
_POLL_S = 0.5


def uses_notify(database_url: str) -> bool:
    """Whether the database at `database_url` carries notifications (PostgreSQL does)."""
    return make_url(database_url).get_backend_name() == "postgresql"


def connect_args(database_url: str) -> dict[str, Any]:
    """psycopg.connect's keyword arguments for a SQLAlchemy PostgreSQL URL (the same host, port,
    user and options the engine would use)."""
    url = make_url(database_url)
    engine = create_engine(url)  # connects to nothing: only its dialect is asked
    try:
        _, kwargs = engine.dialect.create_connect_args(url)
    finally:
        engine.dispose()
    return dict(kwargs)


def notify_changed(session: Session) -> None:
    """Queue a CHANGED_CHANNEL notification in the session's transaction (PostgreSQL only;
    delivered when it commits)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANGED_CHANNEL}"))


class FeedListener:
    """LISTENs on the three channels from a daemon thread; `on_notify(channel, payload)` is called
    for each notification, and `on_notify("", "")` after each reconnection.

    A lost connection (the server restarting, a network cut) is retried every RECONNECT_S."""

    def __init__(self, database_url: str, on_notify: Callable[[str, str], None]) -> None:
        self._kwargs: dict[str, Any] = {"connect_timeout": 5}
        self._kwargs.update(connect_args(database_url))
        self._on_notify = on_notify
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vpnreg-feed-listener", daemon=True)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._connected = False

    def start(self, ready_within_s: float = 5.0) -> bool:
        """Start listening; whether the channels are listened to within `ready_within_s` (if
        not, the thread goes on trying)."""
        self._thread.start()
        return self._ready.wait(ready_within_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _run(self) -> None:
        said = False  # one warning per outage, not one a second
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as err:
                if not said or self._connected:
                    _LOG.warning("feed listener: %s; reconnecting every %.0f s", err, RECONNECT_S)
                said = True
            self._connected = False
            with self._lock:
                conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            self._stop.wait(RECONNECT_S)

    def _listen(self) -> None:
        conn = psycopg.connect(
            **self._kwargs, autocommit=True, application_name="vpnreg feed listener"
        )
        with self._lock:
            self._conn = conn
        self._connected = True
        conn.execute(f"LISTEN {CHANGED_CHANNEL}")
        conn.execute(f"LISTEN {FEED_CHANNEL}")
        conn.execute(f"LISTEN {CREDENTIALS_CHANNEL}")
        if self._ready.is_set():
            # Whatever was sent while the connection was lost is caught up once now.
            self._call("", "")
        self._ready.set()
        while not self._stop.is_set():
            for note in conn.notifies(timeout=_POLL_S):
                self._call(note.channel, note.payload)

    def _call(self, channel: str, payload: str) -> None:
        try:
            self._on_notify(channel, payload)
        except Exception:  # the thread must outlive a failing callback
            _LOG.exception("feed listener: the callback failed")
