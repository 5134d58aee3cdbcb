"""The feed of one database for a long-running process (the web server): `FeedPublisher`.

It owns an engine, publishes through vpnreg.registry.services.feed, and holds the current
history in memory so the web layer serves documents without touching the database or
SQLAlchemy. `catch_up` is what a scheduler calls on every wake-up: it reads the cheap change
signs (vpnreg.registry.services.feed_changes) and publishes only when one of them moved since the
last publish: the incremental step (vpnreg.registry.services.feed_increment) when every change
since names the registrations it moved (ISPs' binding reports, applications' steps), the full
publish, which computes the whole registered set, otherwise.

Several server processes may share one database: `tick` publishes only in the process that
holds the publisher lease (vpnreg.registry.services.feed_lease, ADR 0016); the others `follow`,
loading the serial the holder stored.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from vpnreg.clock import Clock
from vpnreg.core.feed import FeedHistory
from vpnreg.core.feed.versions import DEFAULT_MAX_DELTAS
from vpnreg.registry.services import feed_store
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.feed import PublishResult, publish_detailed
from vpnreg.registry.services.feed_changes import (
    audit_head_seq,
    bindings_timed,
    next_registration_start,
    time_due,
)
from vpnreg.registry.services.feed_increment import Mark, publish_changes
from vpnreg.registry.services.feed_lease import PublisherLease, SoleLease, lease_for_url
from vpnreg.registry.services.mode_changes import trial_due
from vpnreg.registry.services.mode_trials import end_due_trials

__all__ = ["CatchUp", "FeedPublisher"]


@dataclass(frozen=True)
class CatchUp:
    """What one `FeedPublisher.catch_up` did."""

    #: A publish ran (full or incremental); False when nothing had moved.
    published: bool
    #: The held session or serial changed (a new serial here, or one another process made).
    moved: bool


class FeedPublisher:
    """Publishes the feed of one database and holds its current history.

    Every method opens its own session and is safe to call from worker threads; publishes and
    catch-ups of one publisher never run at the same time. `history()` returns the held copy
    without touching the database.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        config: ServiceConfig,
        clock: Clock,
        max_deltas: int = DEFAULT_MAX_DELTAS,
        lease: PublisherLease | None = None,
    ) -> None:
        """`lease`: who may publish among the processes on the database; by default this
        process always may (`for_url`, what the server uses, passes the database's lease)."""
        from vpnreg.registry.db import make_session_factory

        self._sessions = make_session_factory(engine)
        self._engine = engine
        self._config = config
        self._clock = clock
        self._max_deltas = max_deltas
        self._lock = threading.Lock()
        self._work = threading.Lock()
        self._history: FeedHistory | None = None
        self._audit_seq: int | None = None
        #: The clock's time of the last publish (bindings ending after it are news).
        self._published_at: dt.datetime | None = None
        #: What this process's last publish left, while the stored feed is still that; None
        #: once another process moved it (the next publish is then a full one).
        self._mark: Mark | None = None
        self._lease: PublisherLease = lease if lease is not None else SoleLease()
        #: The start of a registration in force that the last publish left out as not yet
        #: valid (feed_changes.next_registration_start); None when there is none.
        self._next_start: dt.datetime | None = None
        self._leads = False

    @classmethod
    def for_url(
        cls,
        database_url: str,
        *,
        config: ServiceConfig,
        clock: Clock,
        max_deltas: int = DEFAULT_MAX_DELTAS,
    ) -> FeedPublisher:
        from vpnreg.registry.db import make_engine

        # No pool: the publisher works in a thread that a server shutdown does not wait for, and
        # a pooled connection it still held would outlive close() until the garbage collector.
        # Without a pool every connection closes when its session does (once a second: cheap).
        engine = make_engine(database_url, poolclass=NullPool)
        return cls(
            engine=engine,
            config=config,
            clock=clock,
            max_deltas=max_deltas,
            lease=lease_for_url(database_url),
        )

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def database_url(self) -> str:
        """The URL of the database this publisher works on (with its password)."""
        return self._engine.url.render_as_string(hide_password=False)

    @property
    def leads(self) -> bool:
        """Whether this process held the publisher lease at its last `tick`."""
        return self._leads

    def close(self) -> None:
        self._lease.release()
        self._leads = False
        self._engine.dispose()

    def history(self) -> FeedHistory | None:
        """The held history (a copy the caller may keep); None before the first load."""
        with self._lock:
            return feed_store.copy_history(self._history) if self._history is not None else None

    def held_key(self) -> tuple[str, int] | None:
        """(session id, serial) of the held history, None before the first load: what a reader
        that keeps something derived from it (the public lookup's index) compares, with no copy."""
        held = self._history  # one reference read: no lock needed, and lookups never wait
        return None if held is None else (held.session_id, held.serial)

    def _hold(
        self,
        history: FeedHistory,
        audit_seq: int | None,
        *,
        published_at: dt.datetime | None,
    ) -> bool:
        """Hold `history`; `published_at` is the time of this process's publish that left it,
        None for a state another process wrote."""
        with self._lock:
            old = self._history
            self._history = feed_store.copy_history(history)
            if published_at is not None:
                self._audit_seq = audit_seq
                self._published_at = published_at
                self._mark = Mark(history.session_id, history.serial, audit_seq, published_at)
            else:
                self._mark = None
        return old is None or (old.session_id, old.serial) != (history.session_id, history.serial)

    def publish(self) -> tuple[PublishResult, bool]:
        """Publish now, whatever moved; (the result, whether the held serial or session moved)."""
        with self._work:
            return self._publish()

    def _publish(self, *, incremental: bool = False) -> tuple[PublishResult, bool]:
        """Publish at the clock's now: the incremental step when asked and possible, else in
        full."""
        now = self._clock.now()
        with self._lock:
            mark = self._mark
        done = None
        with self._sessions() as session:
            # a trial that reached its planned end is reverted first (its own serial, audited,
            # so the incremental step below gives way to a full publish)
            end_due_trials(session, now=now, config=self._config)
            if incremental and mark is not None:
                done = publish_changes(
                    session, mark=mark, now=now, config=self._config, max_deltas=self._max_deltas
                )
            if done is None:
                done = publish_detailed(
                    session, now=now, config=self._config, max_deltas=self._max_deltas
                )
            # a registration stamped after `now` was left out as not yet valid: publish again
            # when it begins (catch_up), not only at the next time check
            begins = next_registration_start(session, now)
        moved = self._hold(done.history, done.audit_seq, published_at=now)
        with self._lock:
            self._next_start = begins
        if moved:
            self._lease.announce(done.history.session_id, done.history.serial)
        return done.result, moved

    def tick(self, *, check_time: bool) -> CatchUp:
        """What a scheduler calls on every wake-up: `catch_up` in the process that holds the
        publisher lease (taking it when it is free), `follow` in the others."""
        self._leads = self._lease.acquire()
        if self._leads:
            return self.catch_up(check_time=check_time)
        return self.follow()

    def follow(self) -> CatchUp:
        """Hold the state another process stored, when it is not the one held; never publish."""
        with self._work:
            with self._lock:
                held = self._history
            with self._sessions() as session:
                return self._take_stored(session, held)

    def _take_stored(self, session: Session, held: FeedHistory | None) -> CatchUp:
        """Hold the stored state if it is not `held` (the caller holds `_work`)."""
        held_key = None if held is None else (held.session_id, held.serial)
        # The state row, the entries and the deltas must come from one snapshot: read one by
        # one under READ COMMITTED, a publish committed between them by the process that holds
        # the lease gave entries of a newer state than the row (a set hash mismatch; found by
        # bench_gateway_fanout with --workers 2).
        session.rollback()
        feed_store.begin_snapshot_read(session)
        state = feed_store.read_state(session, lock=False)
        history = None
        if state is not None and feed_store.state_key(state) != held_key:
            if held is not None:
                history = feed_store.advance_history(session, held, state)
            if history is None:
                history = feed_store.load_history(session, state)
        session.rollback()
        if history is None:
            return CatchUp(published=False, moved=False)
        return CatchUp(False, self._hold(history, None, published_at=None))

    def catch_up(self, *, check_time: bool) -> CatchUp:
        """Publish if anything audited happened since the last publish (or, with `check_time`,
        if a time-driven step is due); otherwise only take over a feed that another process
        (a cron `vpnreg feed publish`, another worker) has moved. The first call publishes."""
        with self._work:
            with self._lock:
                held = self._history
                held_key = None if held is None else (held.session_id, held.serial)
                held_seq = self._audit_seq
                published_at = self._published_at
                begins = self._next_start
            with self._sessions() as session:
                seq = audit_head_seq(session)
                now = self._clock.now()
                due = (begins is not None and now >= begins) or (
                    check_time
                    and (
                        time_due(session, now, self._config)
                        or trial_due(session, now)
                        or (published_at is not None and bindings_timed(session, published_at, now))
                    )
                )
                if held_key is not None and seq == held_seq and not due:
                    return self._take_stored(session, held)
                session.rollback()
            _, moved = self._publish(incremental=True)
            return CatchUp(published=True, moved=moved)
