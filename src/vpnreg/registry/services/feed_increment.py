"""The feed's incremental step under binding churn: `publish_bindings`.

A full publish (vpnreg.registry.services.feed.publish) computes the whole registered set: about
2 s on SQLite at 100,000 subscriber-bound registrations with 50,000 live bindings, far too slow
for ISPs reporting thousands of binding events a second (issue 17). But when every audit event
since the last publish is a report of binding events, and no time-driven registration step is
due, only the entries of the subscribers those reports changed, and of those whose bindings ran
out meanwhile, can differ from the published set. Recomputing just theirs and keeping every
other entry (EntryTable.replace_registrations) gives the set a full publish would, in time that
grows with the change, not with the registry.

Anything else (an application's step, a peer change, a mode change, a due activation or expiry,
a feed moved by another process) answers None, and the caller runs the full publish.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypeGuard

from sqlalchemy import CompoundSelect, select, union
from sqlalchemy.orm import Session

from vpnreg.core.feed.versions import DEFAULT_MAX_DELTAS
from vpnreg.registry.models import AuditLogRow, Binding, FeedStateRow
from vpnreg.registry.services import feed_store
from vpnreg.registry.services.bindings import (
    REPORT_ACTION,
    binding_table,
    subscriber_registrations,
)
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.feed import Published, publish_result
from vpnreg.registry.services.feed_changes import (
    audit_head_seq,
    binding_began_in,
    binding_ended_in,
    time_due,
)
from vpnreg.registry.services.transaction import service_transaction

__all__ = ["Mark", "changed_subscribers", "publish_bindings"]


@dataclass(frozen=True)
class Mark:
    """Where the last publish of this process left the feed: the state it wrote, the audit
    head it read before computing the set (None: the log was empty), and its time."""

    session_id: str
    serial: int
    audit_seq: int | None
    at: dt.datetime


def _still_marked(state: FeedStateRow | None, mark: Mark) -> TypeGuard[FeedStateRow]:
    """Whether the stored feed is still the one `mark` names."""
    return state is not None and feed_store.state_key(state) == (mark.session_id, mark.serial)


def _only_binding_reports(session: Session, since: int, upto: int) -> bool:
    """Whether every audit event in (since, upto] is a report of binding events."""
    other = session.execute(
        select(AuditLogRow.seq)
        .where(
            AuditLogRow.seq > since,
            AuditLogRow.seq <= upto,
            AuditLogRow.action != REPORT_ACTION,
        )
        .limit(1)
    ).first()
    return other is None


def changed_subscribers(
    *, since: int, upto: int, after: dt.datetime, now: dt.datetime
) -> CompoundSelect[int, str]:
    """The query of the subscribers whose entries may have moved: bindings changed by a report
    in (since, upto], and bindings that began or reached their end without a stop in
    (after, now]. Kept a query, so the database joins it instead of receiving thousands of keys
    back.

    "Began" matters: a report may start a binding at its own clock's time, later than the
    publisher's `now`, and commit before the publisher reads the audit head. That publish
    leaves it out (not yet valid) although its sequence is now behind the mark; the next
    publish takes it by its start instead."""
    keys = select(Binding.isp_id, Binding.subscriber_id)
    return union(
        keys.where(Binding.changed_seq > since, Binding.changed_seq <= upto),
        keys.where(binding_began_in(after, now)),
        keys.where(binding_ended_in(after, now)),
    )


def publish_bindings(
    session: Session,
    *,
    mark: Mark,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> Published | None:
    """Publish the binding changes since `mark` alone, or None when that cannot be exact (the
    caller then publishes in full). Commits a new serial only when the set changed.

    The new set is computed in a plain read of one snapshot; the write unit (on SQLite the
    database's one write lock, which ISPs' reports also need) only checks that the feed is still
    `mark`'s and stores the step. Reports committed in between are past the audit sequence
    read, so the next publish takes them."""
    session.rollback()  # whatever the caller read: this step reads one snapshot of its own
    if session.get_bind().dialect.name == "postgresql":
        # Read committed would let each statement see reports committed meanwhile, and the
        # registrations dropped would not match the entries added. SQLite's deferred BEGIN
        # already reads one snapshot.
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        if time_due(session, now, config):
            return None
        seq = audit_head_seq(session)
        since = mark.audit_seq or 0
        if seq is None or not _only_binding_reports(session, since, seq):
            return None
        state = feed_store.read_state(session, lock=False)
        if not _still_marked(state, mark):
            return None  # another process moved the feed: its set is not ours to patch
        history = feed_store.load_history(session, state)
        if history.max_deltas != max_deltas:
            return None
        previous = history.serial
        subscribers = changed_subscribers(since=since, upto=seq, after=mark.at, now=now)
        if session.execute(subscribers.limit(1)).first() is not None:
            history.commit(
                history.entries.replace_registrations(
                    subscriber_registrations(session, subscribers),
                    binding_table(session, now=now, config=config, subscribers=subscribers),
                ),
                history.mode,
                now,
            )
    finally:
        session.rollback()  # the read ends here, whatever it found
    if history.serial != previous:
        with service_transaction(session):
            state = feed_store.read_state(session, lock=True)
            if not _still_marked(state, mark):
                return None
            feed_store.write_step(session, state, history)
    feed_store.remember(history)
    return Published(publish_result(history, previous), history, seq)
