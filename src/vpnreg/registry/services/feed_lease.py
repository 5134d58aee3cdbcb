"""Which server process publishes the feed: the publisher lease (ADR 0016).

Several `vpnreg serve` processes (the workers of one, or separate ones) may run on one
database; exactly one of them publishes at a time, the holder of the lease. The others load the
serial it stored and serve that. A lease dies with its process, so another takes it over at its
next attempt (every periodic check, 1 s by default):

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated
  connection. If the process or the connection dies, the server drops the lock. The connection's
  application_name carries the process id, so `pg_locks` joined with `pg_stat_activity` names
  the publishing process. The holder also announces each new serial on it (NOTIFY, see
  vpnreg.registry.feed_signals).
- SQLite in a file: `flock` on "<database>.publisher.lock" beside it (the kernel drops it when
  the process dies); the holder writes its process id into the file.
- SQLite in memory: one process is all there is; it always holds the lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import psycopg
from sqlalchemy.engine import make_url

from vpnreg.registry.feed_signals import FEED_CHANNEL, connect_args

__all__ = [
    "ADVISORY_KEY",
    "AdvisoryLease",
    "FileLease",
    "PublisherLease",
    "SoleLease",
    "lease_for_url",
]

_LOG = logging.getLogger(__name__)
#: The advisory lock's key (a constant of this application: "vpnr" "feed" in ASCII).
ADVISORY_KEY = 0x76706E72_66656564
#: Seconds a lease connection may take to connect before the attempt counts as failed.
_CONNECT_TIMEOUT_S = 5


class PublisherLease(Protocol):
    """The right to publish, held by at most one process of a database at a time."""

    def acquire(self) -> bool:
        """Whether this process holds the lease now, taking it when free. Cheap enough to be
        called on every check (a small statement, or a system call)."""
        ...

    def announce(self, session_id: str, serial: int) -> None:
        """Tell the other processes that this holder stored `serial` (a no-op where the
        database has no notifications)."""
        ...

    def release(self) -> None:
        """Give the lease up (also when never held)."""
        ...


class SoleLease:
    """The lease of a database no other process can open (SQLite in memory): always held."""

    def acquire(self) -> bool:
        return True

    def announce(self, session_id: str, serial: int) -> None:
        return None

    def release(self) -> None:
        return None


class FileLease:
    """`flock` on a lock file beside a SQLite database (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._held = False
        self._guard = threading.Lock()

    def acquire(self) -> bool:
        with self._guard:
            if self._held:
                return True
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._held = True
            # Who publishes, for an operator (and a test) to read; the lock is the flock.
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
            return True

    def announce(self, session_id: str, serial: int) -> None:
        return None

    def release(self) -> None:
        with self._guard:
            fd, self._fd, self._held = self._fd, None, False
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


class AdvisoryLease:
    """A PostgreSQL session-level advisory lock on a dedicated connection (see the module
    docstring). A process that does not hold it keeps its connection open and tries again at
    each `acquire`; a holder checks that its connection is still alive."""

    def __init__(self, database_url: str) -> None:
        self._kwargs: dict[str, Any] = {"connect_timeout": _CONNECT_TIMEOUT_S}
        self._kwargs.update(connect_args(database_url))
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False
        self._guard = threading.Lock()

    def acquire(self) -> bool:
        with self._guard:
            try:
                if self._conn is None or self._conn.closed:
                    self._held = False
                    self._conn = psycopg.connect(
                        **self._kwargs,
                        autocommit=True,
                        application_name=f"vpnreg serve pid={os.getpid()}",
                    )
                if self._held:
                    # The lock lives as long as this session: a live session still holds it.
                    self._conn.execute("SELECT 1")
                else:
                    row = self._conn.execute(
                        "SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)
                    ).fetchone()
                    self._held = bool(row and row[0])
                    if self._held:
                        _LOG.info("feed: this process (pid %d) now publishes", os.getpid())
            except psycopg.Error as err:
                if self._held:
                    _LOG.warning("feed: publisher lease lost: %s", err)
                self._drop()
            return self._held

    def announce(self, session_id: str, serial: int) -> None:
        with self._guard:
            if self._conn is None or not self._held:
                return
            try:
                self._conn.execute(
                    "SELECT pg_notify(%s, %s)", (FEED_CHANNEL, f"{session_id}:{serial}")
                )
            except psycopg.Error as err:
                # The serial is stored; the others find it at their next check.
                _LOG.warning("feed: publisher lease lost: %s", err)
                self._drop()

    def release(self) -> None:
        with self._guard:
            if self._conn is not None and self._held:
                # Unlocked before the close: the next holder need not wait for this session's
                # backend to finish exiting.
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
            self._drop()

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            conn.close()


def lease_for_url(database_url: str) -> PublisherLease:
    """The lease that fits the database at `database_url`."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return AdvisoryLease(database_url)
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or url.query.get("mode") == "memory":
            return SoleLease()
        return FileLease(Path(f"{database}.publisher.lock"))
    raise ValueError(f"no publisher lease for the {backend} backend")
