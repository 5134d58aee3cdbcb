"""The feed's incremental step: `publish_changes`.

A full publish (vpnreg.registry.services.feed.publish) computes the whole registered set: about
2 s on SQLite at 100,000 subscriber-bound registrations with 50,000 live bindings, far too slow
for ISPs reporting thousands of binding events a second (issue 17), and at 2,000 registrations
still a fifth of the publishing server's CPU while the regulator approves ten applications a
second for 1,000 long-polling gateways (issue 18). But every stored change comes with an audit
event, and most name what they changed:
- a report of binding events changes the entries of the subscribers it reports on (and,
  through time, of those whose bindings ran out meanwhile);
- an application's step (submit, approve, revoke, an expiry the system records...) or an
  amendment of its peers or protocols changes that registration's entries alone;
- some events change nothing the set is made of (a token issued, an explanation read).
When every audit event since the last publish is of these kinds, and no time-driven
registration step is due, only those registrations' entries can differ from the published
set. Recomputing just theirs and keeping every other entry (EntryTable.replace_registrations)
gives the set a full publish would, in time that grows with the change, not with the registry.

Anything else (an import, a mode change, an organisation or user created, a due activation or
expiry, a feed moved by another process, or more changed registrations than
`MAX_REGISTRATIONS`) answers None, and the caller runs the full publish.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeGuard, cast

from sqlalchemy import CompoundSelect, Select, select, union
from sqlalchemy.orm import Session

from vpnreg.core.feed.versions import DEFAULT_MAX_DELTAS
from vpnreg.core.review import Action
from vpnreg.registry.models import Application, AuditLogRow, Binding, BoundTo, FeedStateRow
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
    registration_began_in,
    time_due,
)
from vpnreg.registry.services.lookup import prefix_table
from vpnreg.registry.services.transaction import service_transaction

__all__ = ["MAX_REGISTRATIONS", "Mark", "changed_subscribers", "publish_changes"]


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


#: Audit actions on an application that change no registration's entries but its own (the
#: workflow's steps, the system's timed steps, a renewal's new application, amendments of its
#: peers or protocols and their decisions, its documents).
APPLICATION_ACTIONS = frozenset(
    {a.value for a in Action}
    | {
        "create_application",
        "renew",
        "amend_peers",
        "approve_amendment",
        "amend_protocols",
        "approve_protocol_amendment",
        "refuse_protocol_amendment",
        "upload_document",
        "download_document",
    }
)
#: Audit actions that change nothing the registered set is made of.
NO_SET_ACTIONS = frozenset({"read_explain", "read_binding_history", "token.create", "token.revoke"})
#: Beyond this many changed registrations the full publish is the cheaper one.
MAX_REGISTRATIONS = 1_000


def _named_registrations(session: Session, since: int, upto: int) -> frozenset[int] | None:
    """The registrations the events in (since, upto] name, or None when one of them is not of a
    kind the incremental step knows (or there are more than MAX_REGISTRATIONS of them). Binding
    reports are left out here: they are found through the bindings they stamped."""
    rows = session.execute(
        select(AuditLogRow.action, AuditLogRow.object_type, AuditLogRow.object_id)
        .where(
            AuditLogRow.seq > since,
            AuditLogRow.seq <= upto,
            AuditLogRow.action.not_in([REPORT_ACTION, *NO_SET_ACTIONS]),
        )
        .order_by(AuditLogRow.seq)
        .limit(MAX_REGISTRATIONS + 1)
    ).all()
    if len(rows) > MAX_REGISTRATIONS:
        return None
    registrations = set()
    for action, object_type, object_id in rows:
        if action not in APPLICATION_ACTIONS or object_type != "application":
            return None
        try:
            registrations.add(int(object_id))
        except ValueError:
            return None
    return frozenset(registrations)


def changed_subscribers(
    *,
    since: int,
    upto: int,
    after: dt.datetime,
    now: dt.datetime,
    registrations: Collection[int] = (),
) -> CompoundSelect[int, str]:
    """The query of the subscribers whose entries may have moved: bindings changed by a report
    in (since, upto], bindings that began or reached their end without a stop in (after, now],
    and the subscribers of those of `registrations` that are subscriber-bound (their step moves
    every entry their bindings make). Kept a query, so the database joins it instead of
    receiving thousands of keys back.

    "Began" matters: a report may start a binding at its own clock's time, later than the
    publisher's `now`, and commit before the publisher reads the audit head. That publish
    leaves it out (not yet valid) although its sequence is now behind the mark; the next
    publish takes it by its start instead."""
    keys = select(Binding.isp_id, Binding.subscriber_id)
    parts = [
        keys.where(Binding.changed_seq > since, Binding.changed_seq <= upto),
        keys.where(binding_began_in(after, now)),
        keys.where(binding_ended_in(after, now)),
    ]
    if registrations:
        of_steps = select(Application.isp_id, Application.subscriber_id).where(
            Application.id.in_(sorted(registrations)),
            Application.bound_to == BoundTo.SUBSCRIBER.value,
        )
        # a subscriber-bound registration always names its subscriber (the column is nullable
        # for prefix-bound ones only)
        parts.append(cast("Select[int, str]", of_steps))
    return union(*parts)


def publish_changes(
    session: Session,
    *,
    mark: Mark,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> Published | None:
    """Publish the changes since `mark` alone, or None when that cannot be exact (the caller
    then publishes in full). Commits a new serial only when the set changed.

    The new set is computed in a plain read of one snapshot; the write unit (on SQLite the
    database's one write lock, which ISPs' reports and the portal's steps also need) only
    checks that the feed is still `mark`'s and stores the step. Changes committed in between
    are past the audit sequence read, so the next publish takes them."""
    session.rollback()  # whatever the caller read: this step reads one snapshot of its own
    if session.get_bind().dialect.name == "postgresql":
        # Read committed would let each statement see changes committed meanwhile, and the
        # registrations dropped would not match the entries added. SQLite's deferred BEGIN
        # already reads one snapshot.
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        if time_due(session, now, config):
            return None
        seq = audit_head_seq(session)
        since = mark.audit_seq or 0
        named = None if seq is None else _named_registrations(session, since, seq)
        if seq is None or named is None:
            return None
        state = feed_store.read_state(session, lock=False)
        if not _still_marked(state, mark):
            return None  # another process moved the feed: its set is not ours to patch
        history = feed_store.load_history(session, state)
        if history.max_deltas != max_deltas:
            return None
        previous = history.serial
        # and those in force that began since the last publish's time (feed_changes)
        changed = named | set(
            session.scalars(select(Application.id).where(registration_began_in(mark.at, now)))
        )
        if len(changed) > MAX_REGISTRATIONS:
            return None
        subscribers = changed_subscribers(
            since=since, upto=seq, after=mark.at, now=now, registrations=changed
        )
        if changed or session.execute(subscribers.limit(1)).first() is not None:
            fresh = prefix_table(session, now=now, config=config, registrations=changed)
            history.commit(
                history.entries.replace_registrations(
                    changed | subscriber_registrations(session, subscribers),
                    fresh.union(
                        binding_table(session, now=now, config=config, subscribers=subscribers)
                    ),
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
