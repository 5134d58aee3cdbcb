"""Engines, sessions and schema upgrades for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

from vpnreg.registry.errors import Unavailable

#: Where the migration scripts live: inside the package, so an installed wheel can upgrade.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: How long one attempt of a SQLite writer waits for the lock before giving up (milliseconds).
#: Short on purpose: a write unit that finds the lock taken retries as a whole
#: (vpnreg.registry.services.transaction), so no connection sits in SQLite's busy handler for
#: long while holding a worker thread.
SQLITE_BUSY_TIMEOUT_MS = 2_000

#: The connection execution option that makes a transaction a write unit: on SQLite it begins
#: with BEGIN IMMEDIATE (the write lock taken at once), every other transaction with a plain
#: deferred BEGIN, which in WAL mode never waits for a writer and never blocks one.
WRITE_UNIT = "vpnreg_write_unit"


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _ensure_sqlite_parent(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _install_sqlite_hooks(engine: Engine) -> None:
    # The documented pysqlite recipe: take transaction control away from the driver
    # (isolation_level=None) and emit BEGIN ourselves. A write unit begins IMMEDIATE, so its
    # read-check-write sequences (overlap check, audit chain head) are serialised with other
    # writers and it can never fail half-way on a lock upgrade; reads begin deferred, so in WAL
    # mode they read a snapshot and take no lock that anyone waits for.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_UNIT, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_WRITER_GATES: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_GATES_LOCK = threading.Lock()


def writer_gate(engine: Engine) -> threading.RLock | None:
    """For a SQLite engine, the lock its write units queue on inside this process (None for
    PostgreSQL, whose row locks queue writers themselves).

    SQLite's busy handler makes a waiting writer sleep and poll, with growing sleeps, so under
    many writers an unlucky one loses the lock again and again (seconds of tail latency). Waiting
    here first wakes one writer as soon as the unit before it ends; SQLite's own lock still
    guards against other processes.
    """
    if engine.dialect.name != "sqlite":
        return None
    with _GATES_LOCK:
        gate = _WRITER_GATES.get(engine)
        if gate is None:
            gate = _WRITER_GATES[engine] = threading.RLock()
        return gate


def is_lock_timeout(error: BaseException) -> bool:
    """True for SQLite's "database is locked" (the busy timeout ran out), wrapped or not."""
    orig = getattr(error, "orig", error)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets foreign keys, WAL, a short busy timeout, and BEGIN
    IMMEDIATE for write units only.

    For a SQLite file the parent directory is created. Extra keyword arguments go to
    `sqlalchemy.create_engine`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_parent(parsed)
        engine = create_engine(parsed, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    # A connection the server dropped (a restart) is found and replaced before use, and a
    # pool whose connections all died is emptied at the first one found dead.
    kwargs.setdefault("pool_pre_ping", True)
    # As many connections as the web server has worker threads (AnyIO's 40): with SQLAlchemy's
    # default of 15, writers waiting on a row lock held every connection and lookups queued
    # behind them for one.
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 30)
    engine = create_engine(parsed, **kwargs)
    event.listen(engine, "handle_error", _unavailable_when_unreachable)
    return engine


def _unavailable_when_unreachable(context: ExceptionContext) -> None:
    """A server that cannot be reached (refusing, starting up, shutting down) or a connection
    lost mid-request is `Unavailable` (503 with Retry-After), not an internal error.

    SQLAlchemy has already invalidated the connection (and, on a disconnect, the whole pool)
    when it calls this, so the next request connects afresh: the server recovers by itself."""
    if context.is_pre_ping or not isinstance(context.original_exception, Exception):
        # A dead connection found by the pre-ping is SQLAlchemy's to replace, silently.
        return
    dbapi = context.dialect.loaded_dbapi
    lost = context.is_disconnect
    # `connection` is None only when connecting failed: the server is down or not ready.
    refused = context.connection is None and isinstance(
        context.original_exception, dbapi.OperationalError
    )
    if lost or refused:
        raise Unavailable(str(context.original_exception)) from context.original_exception


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (services return them)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config() -> Config:
    """An Alembic configuration built in code: no alembic.ini is needed at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default: the newest migration)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
