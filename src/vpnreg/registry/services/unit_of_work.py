"""Opening the registry from a long-running process: one engine, one session per unit of work.

The web layer holds a `Database` and asks it for a session per request; it never imports
SQLAlchemy itself (the import-linter contract), so the session type is re-exported as DbSession.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vpnreg.registry.db import make_engine, make_session_factory

#: The session every service takes first; named here so callers need not import SQLAlchemy.
DbSession: TypeAlias = Session


class Database:
    """The registry at `url`; the engine is made on first use, so building an app costs nothing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self._lock = threading.Lock()

    def _sessions(self) -> sessionmaker[Session]:
        with self._lock:
            if self._factory is None:
                self._engine = make_engine(self.url)
                self._factory = make_session_factory(self._engine)
            return self._factory

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for one unit of work; whatever is left uncommitted is rolled back."""
        with self._sessions()() as session:
            try:
                yield session
            finally:
                session.rollback()

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._factory = None


def open_database(url: str) -> Database:
    return Database(url)
