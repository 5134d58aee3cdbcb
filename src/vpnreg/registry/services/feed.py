"""The feed's services: publish, current_feed, set_mode and reset_feed.

`publish` is the one way the feed moves: it lets time act first (advance_time), compares the
registered set (lookup.registered_table, the one definition of "registered") with the set held by
the feed, and commits a new serial with its delta only when they differ. `set_mode` changes the
signed enforcement mode (the regulator's kill switch), audited, in the same transaction as the
serial it makes. `reset_feed` starts a new session (gateways fetch a snapshot).

The rows and the cache of rebuilt histories are vpnreg.registry.services.feed_store; a
long-running process publishes through vpnreg.registry.services.feed_publisher.FeedPublisher.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from vpnreg.core.feed import EnforcementMode, FeedHistory, Mode, VpnProtocol
from vpnreg.core.feed.versions import DEFAULT_MAX_DELTAS
from vpnreg.core.review import Role
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.services import feed_store
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.feed_changes import audit_head_seq, time_due
from vpnreg.registry.services.lookup import registered_table
from vpnreg.registry.services.mode_changes import check_change, record_change
from vpnreg.registry.services.timeline import TimeChange, advance_time
from vpnreg.registry.services.transaction import service_transaction

__all__ = [
    "PublishResult",
    "Published",
    "current_feed",
    "publish",
    "publish_detailed",
    "publish_result",
    "reset_feed",
    "set_mode",
]


@dataclass(frozen=True)
class PublishResult:
    """What a publish (or a mode change, or a reset) left the feed at."""

    session_id: str
    serial: int
    #: The serial before this call (0 when the feed was created by it).
    previous_serial: int
    set_hash: str
    entries: int
    added: int
    removed: int
    mode: EnforcementMode
    created: dt.datetime
    time_changes: tuple[TimeChange, ...] = ()

    @property
    def changed(self) -> bool:
        return self.serial != self.previous_serial


@dataclass(frozen=True)
class Published:
    """A publish as a long-running publisher needs it: the result, the history it left, and
    the audit head read before the registered set was (None: the audit log was empty)."""

    result: PublishResult
    history: FeedHistory
    audit_seq: int | None


def publish_result(
    history: FeedHistory, previous_serial: int, changes: Iterable[TimeChange] = ()
) -> PublishResult:
    """The result of a publish that left `history` after `previous_serial`."""
    added = removed = 0
    if previous_serial and history.serial == previous_serial + 1 and history.deltas:
        step = history.deltas[-1]
        added, removed = len(step.added), len(step.removed)
    elif not previous_serial:
        added = len(history.entries)
    return PublishResult(
        session_id=history.session_id,
        serial=history.serial,
        previous_serial=previous_serial,
        set_hash=history.entries.set_hash(),
        entries=len(history.entries),
        added=added,
        removed=removed,
        mode=history.mode,
        created=history.created,
        time_changes=tuple(changes),
    )


def _new_session_id() -> str:
    return uuid.uuid4().hex


def _commit(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int,
    mode: Callable[[EnforcementMode], EnforcementMode] | None = None,
    audit: Callable[[FeedHistory, EnforcementMode], None] | None = None,
) -> tuple[FeedHistory, int]:
    """In the caller's transaction: lock the feed, commit the registered set (and mode)."""
    state = feed_store.read_state(session, lock=True)
    table = registered_table(session, now=now, config=config)
    if state is None:
        first_mode = EnforcementMode.enforce_all()
        history = FeedHistory.new(
            session_id=_new_session_id(),
            now=now,
            entries=table,
            mode=mode(first_mode) if mode else first_mode,
            max_deltas=max_deltas,
        )
        if audit is not None:
            audit(history, first_mode)
        feed_store.write_fresh(session, state, history)
        return history, 0
    history = feed_store.load_history(session, state)
    previous, before_mode = history.serial, history.mode
    if history.max_deltas != max_deltas:
        history = feed_store.copy_history(history, max_deltas)
    history.commit(table, mode(history.mode) if mode else history.mode, now)
    if audit is not None:
        audit(history, before_mode)
    if history.serial != previous:
        feed_store.write_step(session, state, history)
    elif history.max_deltas != state.max_deltas:
        feed_store.write_state(session, state, history)
    return history, previous


def publish_detailed(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> Published:
    """`publish`, also returning the history left and the audit head it was computed at."""
    # advance_time locks every timed registration and loads it with its prefixes and peers;
    # the web server publishes after every change, so look first (plain columns, no lock)
    # whether any step is due at all (a plain read: no write lock). It decides again under
    # its lock.
    changes = (
        advance_time(session, now=now, config=config) if time_due(session, now, config) else []
    )
    with service_transaction(session):
        # Read before the set: a change committed in between is published now and again
        # noticed later (harmless), never missed.
        seq = audit_head_seq(session)
        history, previous = _commit(session, now=now, config=config, max_deltas=max_deltas)
    feed_store.remember(history)
    return Published(publish_result(history, previous, changes), history, seq)


def publish(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> PublishResult:
    """Let time act (advance_time), then commit the registered set as a new serial if it
    differs from the published one. The first publish creates the feed (serial 1, enforce)."""
    return publish_detailed(session, now=now, config=config, max_deltas=max_deltas).result


def current_feed(session: Session) -> FeedHistory | None:
    """The published history as stored (None before the first publish); nothing is changed."""
    state = feed_store.read_state(session, lock=False)
    return None if state is None else feed_store.load_history(session, state)


def _parse_mode(
    mode: Mode | str, protocol: VpnProtocol | str | None
) -> tuple[Mode, VpnProtocol | None]:
    problems: list[FieldError] = []
    chosen_mode: Mode | None = None
    chosen_protocol: VpnProtocol | None = None
    try:
        chosen_mode = Mode(mode)
    except ValueError:
        problems.append(
            FieldError("mode", "unknown_mode", "mode must be enforce or dry-run", str(mode))
        )
    if protocol is not None:
        try:
            chosen_protocol = VpnProtocol(protocol)
        except ValueError:
            names = ", ".join(p.value for p in VpnProtocol)
            problems.append(
                FieldError(
                    "protocol",
                    "unknown_protocol",
                    f"protocol must be one of {names}",
                    str(protocol),
                )
            )
    if problems or chosen_mode is None:
        raise ValidationFailed(problems)
    return chosen_mode, chosen_protocol


def set_mode(
    session: Session,
    *,
    mode: Mode | str,
    protocol: VpnProtocol | str | None = None,
    reason: str,
    until: dt.datetime | None = None,
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> PublishResult:
    """The regulator sets the signed enforcement mode, for one protocol or for all.

    Without `protocol` this is the national switch: the default becomes `mode` and every
    per-protocol override is dropped, so nothing is left enforcing (or dry-running) against it.
    With `protocol`, only that protocol's override is set. `reason` is required; `until` makes
    it a trial that the publish path reverts then (services.mode_trials). Audited as
    "feed.mode" and announced (services.mode_changes) in the same transaction; pending
    registry changes are published in the same serial.
    """
    require_role(actor, Role.REGULATOR)
    chosen, proto = _parse_mode(mode, protocol)
    why = check_change(reason=reason, until=until, now=now)

    def change(current: EnforcementMode) -> EnforcementMode:
        if proto is None:
            return EnforcementMode(chosen)
        overrides: dict[str, Mode] = {str(p): m for p, m in current.per_protocol.items()}
        overrides[str(proto)] = chosen
        return EnforcementMode(current.default, overrides)

    def audit(history: FeedHistory, before: EnforcementMode) -> None:
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="feed.mode",
            object_type="feed",
            object_id=history.session_id,
            before=before.to_json(),
            after={
                **history.mode.to_json(),
                "serial": history.serial,
                "protocol": None if proto is None else str(proto),
                "reason": why,
                "until": None if until is None else until.isoformat(),
            },
        )
        record_change(
            session,
            protocol=proto,
            before=before,
            after=history.mode,
            reason=why,
            until=until,
            actor=actor,
            serial=history.serial,
            now=now,
        )

    changes = advance_time(session, now=now, config=config)
    with service_transaction(session):
        history, previous = _commit(
            session, now=now, config=config, max_deltas=max_deltas, mode=change, audit=audit
        )
    feed_store.remember(history)
    return publish_result(history, previous, changes)


def reset_feed(
    session: Session,
    *,
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    max_deltas: int = DEFAULT_MAX_DELTAS,
) -> PublishResult:
    """Start a new feed session holding the registered set (regulator or admin; audited).

    The mode carries over, and the new state's time is never earlier than the old one's, so
    gateways accept the new session instead of refusing it as a rollback.
    """
    require_role(actor, Role.REGULATOR, Role.ADMIN)
    changes = advance_time(session, now=now, config=config)
    with service_transaction(session):
        state = feed_store.read_state(session, lock=True)
        old = feed_store.load_history(session, state) if state is not None else None
        table = registered_table(session, now=now, config=config)
        history = FeedHistory.new(
            session_id=_new_session_id(),
            now=max(now, old.created) if old is not None else now,
            entries=table,
            mode=old.mode if old is not None else None,
            max_deltas=max_deltas,
        )
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="feed.reset",
            object_type="feed",
            object_id=history.session_id,
            before=None if old is None else {"session_id": old.session_id, "serial": old.serial},
            after={"session_id": history.session_id, "serial": history.serial},
        )
        feed_store.write_fresh(session, state, history)
    feed_store.remember(history)
    return publish_result(history, 0, changes)
