"""The unit of work of one service call: commit on success, roll back on any error.

A unit begins as a write unit (on SQLite: BEGIN IMMEDIATE, the write lock taken before the first
read, so it never fails half-way on a lock upgrade; writers of one process first queue on a
lock of their own, `db.writer_gate`, so they take turns instead of polling SQLite). Whatever
read transaction the session had open is ended first; objects loaded in it stay usable
(sessions do not expire on commit). When the lock is taken, the attempt is retried until
WRITE_WAIT_S has passed, so contention costs time, never an error; only a lock held for longer
than that gives `Busy` (HTTP 503). A database that cannot be reached gives `Unavailable` (also
503, raised by the engine: vpnreg.registry.db); a unit is never run again after it, since a
connection lost at commit leaves the outcome unknown.

Units nest: a service called inside another service's unit joins it (one transaction, one
commit at the outermost), so a composite user action is all or nothing. Work outside the
database that must follow the unit's fate (a document's file put in its place) is registered
with `on_outcome` and runs after the commit, or after the rollback.

Core errors about the review flow are turned into the registry's domain errors here, so every
service raises only RegistryError subclasses on purpose.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from vpnreg.core.review import PermissionDenied, TransitionError
from vpnreg.registry.db import WRITE_UNIT, is_lock_timeout, writer_gate
from vpnreg.registry.errors import Busy, Forbidden, StaleVersion, StateConflict, Unavailable

#: How long a write unit keeps trying to take SQLite's write lock before answering Busy.
WRITE_WAIT_S = 30.0
#: How many times a whole unit of work is run again after a lock timeout inside it.
UNIT_ATTEMPTS = 3
_DEPTH = "vpnreg_unit_depth"
_HOOKS = "vpnreg_unit_hooks"
_GATE = "vpnreg_unit_gate"

T = TypeVar("T")


def _enter_gate(session: Session, deadline: float) -> None:
    """Queue behind this process's other writers (SQLite only); Busy if that takes too long."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    gate = writer_gate(engine)
    if gate is None:
        return
    if not gate.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise Busy()
    session.info[_GATE] = gate


def _leave_gate(session: Session) -> None:
    gate = session.info.pop(_GATE, None)
    if gate is not None:
        gate.release()


def _begin_write(session: Session) -> None:
    """End any read transaction, then begin a write unit (waiting for the lock if need be)."""
    if session.in_transaction():
        session.commit()
    deadline = time.monotonic() + WRITE_WAIT_S
    _enter_gate(session, deadline)
    try:
        _take_write_lock(session, deadline)
    except BaseException:
        _leave_gate(session)
        raise


def _take_write_lock(session: Session, deadline: float) -> None:
    while True:
        try:
            session.connection(execution_options={WRITE_UNIT: True})
            return
        except OperationalError as exc:
            session.rollback()
            if not is_lock_timeout(exc) or time.monotonic() >= deadline:
                if is_lock_timeout(exc):
                    raise Busy() from exc
                raise
        # Each attempt already waited SQLITE_BUSY_TIMEOUT_MS; a little jitter keeps waiting
        # writers from retrying in lockstep.
        time.sleep(random.uniform(0.0, 0.05))


@contextmanager
def service_transaction(session: Session) -> Iterator[None]:
    """Run the body as one write unit and commit it; roll it back if anything is raised.

    Inside another unit of the same session the body joins that unit (no commit of its own).
    With a session joined to an outer transaction (join_transaction_mode="create_savepoint",
    as in the tests), commit and rollback apply to a savepoint only.
    """
    depth = int(session.info.get(_DEPTH, 0))
    if depth:
        session.info[_DEPTH] = depth + 1
        try:
            yield
        finally:
            session.info[_DEPTH] = depth
        return
    _begin_write(session)
    session.info[_DEPTH] = 1
    session.info[_HOOKS] = []
    try:
        with _translated(session):
            yield
            session.commit()
    except BaseException:
        _leave_gate(session)
        _run_hooks(session, committed=False)
        raise
    else:
        _leave_gate(session)
        _run_hooks(session, committed=True)
    finally:
        session.info[_DEPTH] = 0


def _run_hooks(session: Session, *, committed: bool) -> None:
    hooks: list[tuple[Callable[[], None], Callable[[], None]]] = session.info.pop(_HOOKS, [])
    for on_commit, on_rollback in hooks:
        (on_commit if committed else on_rollback)()


def on_outcome(
    session: Session, *, committed: Callable[[], None], rolled_back: Callable[[], None]
) -> None:
    """Run `committed` after the current unit commits, or `rolled_back` if it does not."""
    if not session.info.get(_DEPTH):
        raise RuntimeError("on_outcome is only for work inside a unit (service_transaction)")
    session.info[_HOOKS].append((committed, rolled_back))


@contextmanager
def _translated(session: Session) -> Iterator[None]:
    """Roll back on any error, and raise the registry's own error for the core's and the
    database's refusals."""
    try:
        yield
    except PermissionDenied as exc:
        session.rollback()
        raise Forbidden(exc.message) from exc
    except TransitionError as exc:
        session.rollback()
        raise StateConflict(exc.message) from exc
    except StaleDataError as exc:
        # Another transaction changed the row between our read and our write.
        session.rollback()
        raise StaleVersion(-1, -1) from exc
    except OperationalError as exc:
        session.rollback()
        if is_lock_timeout(exc):
            raise Busy() from exc
        raise
    except BaseException:
        session.rollback()
        raise


def run_unit(session: Session, work: Callable[[], T]) -> T:
    """Run `work` (a whole unit of work on `session`) and run it again, from the start, if the
    database stayed locked inside it; a unit that keeps meeting the lock gives Busy."""
    if session.info.get(_DEPTH):
        return work()  # inside another unit: that one is retried as a whole
    for attempt in range(UNIT_ATTEMPTS):
        try:
            return work()
        except Unavailable:
            # A connection lost at commit leaves the outcome unknown: the client decides.
            raise
        except Busy:
            if attempt == UNIT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.01, 0.1))
    raise AssertionError("unreachable")
