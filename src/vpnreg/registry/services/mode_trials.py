"""Trials end by themselves: `end_due_trials` reverts every mode change whose planned end passed.

Called from the publish path (FeedPublisher before each publish, and when its catch-up finds
`trial_due`; `vpnreg feed publish`), beside advance_time, the other time-driven step. A trial is
reverted through services.set_mode as the "system" actor, so the revert is signed in a serial of
its own, audited as "feed.mode" and announced like any change, with a reason naming the trial.

What a revert restores: for one protocol, the mode that protocol had before the trial; for the
national switch, the default before it and then each per-protocol override it had dropped (one
change each), so the signed mode is again what it was before the trial.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from vpnreg.core.feed import EnforcementMode, Mode, VpnProtocol
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.feed import PublishResult, set_mode
from vpnreg.registry.services.mode_changes import MAX_REASON, PLANNED_END, due_trials, trial_due
from vpnreg.registry.services.transaction import service_transaction

__all__ = ["end_due_trials", "revert_steps"]

#: The actor a revert is made and audited as.
SYSTEM = "system"


def revert_steps(
    before: EnforcementMode, protocol: VpnProtocol | None
) -> list[tuple[Mode, VpnProtocol | None]]:
    """The set_mode calls (mode, protocol) that give back what a trial changed."""
    if protocol is not None:
        return [(before.effective(protocol), protocol)]
    return [(before.default, None), *((m, p) for p, m in before.per_protocol.items())]


def end_due_trials(
    session: Session, *, now: dt.datetime, config: ServiceConfig
) -> list[PublishResult]:
    """Revert every trial whose planned end is at or before `now`, oldest first; one
    PublishResult per set_mode call made (empty when none was due)."""
    results: list[PublishResult] = []
    # a plain read first: every publish calls this, and a write unit takes the write lock
    if not trial_due(session, now):
        return results
    while True:
        # one trial per unit: it is marked ended and reverted together, or not at all
        with service_transaction(session):
            due = due_trials(session, now)
            if not due:
                return results
            trial = due[0]
            # ended before the revert is recorded, so the revert does not count as replacing it
            trial.ended_at = now
            trial.ended_by = PLANNED_END
            proto = None if trial.protocol is None else VpnProtocol(trial.protocol)
            why = (
                f"planned end of trial {trial.id} "
                f"(started {trial.started_at:%Y-%m-%d %H:%M} UTC: {trial.reason})"
            )
            for mode, step_protocol in revert_steps(EnforcementMode.from_json(trial.before), proto):
                results.append(
                    set_mode(
                        session,
                        mode=mode,
                        protocol=step_protocol,
                        reason=why[:MAX_REASON],
                        actor=SYSTEM,
                        now=now,
                        config=config,
                    )
                )
