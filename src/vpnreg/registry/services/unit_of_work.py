"""Opening the registry from a long-running process: one engine, one session per unit of work.

The web layer holds a `Database` and opens a session per request (`open_request`), which it
only hands to services and closes with `close_request`; it never imports SQLAlchemy itself (the
import-linter contract) and never calls the session's methods, so it knows the session only as
the opaque name DbSession. A session only reads until a service begins a write unit in it
(service_transaction), so on SQLite a request that only reads never takes the write lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import NewType

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.errors import Unavailable

#: The session every service takes first, as the web knows it: a handle to pass on, by a name
#: that needs no SQLAlchemy import (a NewType, so no Session class sits in the web's modules).
DbSession = NewType("DbSession", Session)


class Database:
    """The registry at `url`; the engine is made on first use, so building an app costs nothing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self._releaser: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _sessions(self) -> sessionmaker[Session]:
        with self._lock:
            if self._factory is None:
                self._engine = self._make_engine()
                self._factory = make_session_factory(self._engine)
            return self._factory

    @property
    def engine(self) -> Engine:
        """The engine (made now if not yet): its pool is what health checks and tests read."""
        self._sessions()
        assert self._engine is not None
        return self._engine

    def _make_engine(self) -> Engine:
        """The engine for `url` (a read replica's adds its own connection rules)."""
        return make_engine(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for one unit of work; whatever is left uncommitted is rolled back, and a
        connection lost meanwhile is let go quietly (`_close`), as after a request."""
        session = self._sessions()()
        try:
            yield session
        finally:
            _close(session)

    def open_request(self) -> DbSession:
        """A session for one request; it connects on first use, so opening costs no I/O."""
        return DbSession(self._sessions()())

    async def close_request(self, session: DbSession) -> None:
        """Roll back whatever is left and return the connection: on the Database's own thread
        if the session was used (see `release`), at once if it never connected."""
        if session.in_transaction():
            await asyncio.wrap_future(self.release(session))
        else:
            session.close()

    def release(self, session: Session) -> Future[None]:
        """Close `session` (roll back what is left, return the connection) on the Database's own
        releasing thread.

        Not on the request pool: when every pool thread is busy, a session waiting there for
        its release would keep its connection (and on PostgreSQL its locks) from everyone.
        Releasing never waits for a lock, so a few threads keep up (on PostgreSQL each release
        is a round trip, so not one: a queue of them would delay every answer).
        """
        with self._lock:
            if self._releaser is None:
                self._releaser = ThreadPoolExecutor(4, thread_name_prefix="vpnreg-release")
            releaser = self._releaser
        return releaser.submit(_close, session)

    def dispose(self) -> None:
        with self._lock:
            if self._releaser is not None:
                self._releaser.shutdown(wait=True)
            self._releaser = None
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._factory = None


def _close(session: Session) -> None:
    """Roll back and close. A connection lost meanwhile (the database restarted after the
    request's answer was decided) has nothing left to roll back: the server ended that
    transaction, and the pool replaces the connection, so the loss is not the request's error."""
    try:
        session.rollback()
    except (Unavailable, DBAPIError):
        session.invalidate()
    finally:
        session.close()


def open_database(url: str) -> Database:
    return Database(url)
