"""The gateway pipeline: flow records in; classification, policy, enforcement, log and metrics out.

`Gateway` holds what the flow meter's forked processes cannot see: the allowlist (an immutable
`FeedView`, swapped whole when the feed changes), the home prefixes and the back end. One lock
orders a decision-and-block against a feed swap-and-unblock, so a block decided on the old
allowlist is always removed by the swap that registers it, never added after it.

Blocks of a flow that is still going are refreshed (`refresh_blocks`) until the flow meter
reports the end of the flow's continuation, so a long tunnel stays blocked past the back end's
timeout; a flow that ended lets its block expire by itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vpnreg.agent.config import EnforceKind
from vpnreg.agent.enforce import EnforcementBackend
from vpnreg.agent.flows import ACTIVE_TIMEOUT_S, FlowRecord, Handover
from vpnreg.agent.metrics import GatewayMetrics
from vpnreg.agent.reporter import Reporter
from vpnreg.agent.verdictlog import VerdictLog, verdict_line
from vpnreg.clock import Clock
from vpnreg.core.allowlist import AllowlistIndex, added_entries
from vpnreg.core.classify import Classification, FlowContext, classify
from vpnreg.core.feed import EnforcementMode, FeedState, Mode
from vpnreg.core.policy import Action, BlockKey, Decision, FlowKey, Network, Verdict, decide

#: A flow's two endpoints and protocol, in either direction (continuations may start reversed).
Conversation = tuple[int, frozenset[tuple[str, int]]]


def conversation(record: FlowRecord) -> Conversation:
    f = record.features
    return (f.protocol, frozenset({(f.src_ip, f.src_port), (f.dst_ip, f.dst_port)}))


@dataclass(frozen=True)
class FeedView:
    """What the policy reads of the feed; replaced as a whole, never changed."""

    index: AllowlistIndex
    state: FeedState | None = None
    #: The effective signed mode (None: no verified feed, everything dry-run).
    mode: EnforcementMode | None = None

    @property
    def serial(self) -> int | None:
        return None if self.state is None else self.state.serial

    def dry_run(self, vpn_protocol: str) -> bool:
        return self.mode is None or self.mode.effective(vpn_protocol) is Mode.DRY_RUN


@dataclass
class HeldBlock:
    """A block the agent keeps refreshed while its flows go on."""

    protocol: str
    conversations: set[Conversation] = field(default_factory=set)


@dataclass(frozen=True)
class _Passed:
    """A flow passed as registered, kept to be decided again when the registered set changes."""

    key: FlowKey
    protocol: str
    record: FlowRecord
    classification: Classification


@dataclass
class Totals:
    flows: int = 0
    vpn: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        parts = [f"{self.flows} flows", f"{self.vpn} VPN"]
        parts += [f"{n} {name}" for name, n in sorted(self.verdicts.items())]
        return ", ".join(parts)


class Gateway:
    def __init__(
        self,
        *,
        backend: EnforcementBackend,
        enforce: EnforceKind,
        home: Iterable[Network],
        clock: Clock,
        source: str,
        verdicts: VerdictLog | None = None,
        metrics: GatewayMetrics | None = None,
        live: bool = False,
        active_timeout_s: int = ACTIVE_TIMEOUT_S,
        backend_factory: Callable[[EnforceKind], EnforcementBackend] | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.backend = backend
        self.reporter = reporter
        self.enforce = enforce
        self.home: tuple[Network, ...] = tuple(home)
        self.clock = clock
        self.source = source
        self.verdicts = verdicts
        self.metrics = metrics
        self.live = live
        self.active_timeout_ms = active_timeout_s * 1000
        self._factory = backend_factory
        self.view = FeedView(AllowlistIndex.empty())
        self.context = FlowContext()
        self.held: dict[BlockKey, HeldBlock] = {}
        #: Flows passed as registered that are still going: a feed that no longer registers them
        #: (an Accounting Stop ended the binding, a withdrawal) blocks them, since the meter
        #: hands a flow over only once and its continuation is never decided again.
        self.passed: dict[Conversation, _Passed] = {}
        self.totals = Totals()
        self.lock = threading.RLock()
        if metrics is not None:
            metrics.watch(
                blocks_active=self._count_blocks,
                feed_age=self._feed_age,
                feed_stale=lambda: 1.0 if self.view.mode is None else 0.0,
            )

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            self.backend.start()
            self.held.clear()

    def stop(self, *, fail_open: bool = True) -> None:
        """Remove the back end's state (fail open) unless told to leave the blocks in place."""
        with self.lock:
            if fail_open or self.enforce is EnforceKind.DRY_RUN:
                self.backend.stop()
            self.held.clear()
            if self.verdicts is not None:
                self.verdicts.close()

    # -- feed --------------------------------------------------------------------------------

    def update_feed(
        self, state: FeedState | None, mode: EnforcementMode | None
    ) -> tuple[BlockKey, ...]:
        """Swap in a new feed state and mode; lift the blocks it registers or puts in dry-run."""
        old = self.view
        if state is not None and old.state is not None and state.set_hash == old.state.set_hash:
            index = old.index
            added = None
        else:
            index = (
                AllowlistIndex.empty()
                if state is None
                else AllowlistIndex.from_entries(state.entries)
            )
            old_entries = None if old.state is None else old.state.entries
            added = None if state is None else added_entries(old_entries, state.entries)
        view = FeedView(index=index, state=state, mode=None if state is None else mode)
        if added is None or not len(added):
            lifted_index = None
        elif old.state is None:
            lifted_index = index  # everything is new: the full index is the index of additions
        else:
            lifted_index = AllowlistIndex.from_entries(added)
        with self.lock:
            self.view = view
            if self.metrics is not None:
                self.metrics.feed_serial.set(view.serial or 0)

            def lifted(key: BlockKey) -> bool:
                if lifted_index is not None and lifted_index.lifts(key):
                    return True
                held = self.held.get(key)
                if held is not None:
                    return view.dry_run(held.protocol)
                return view.mode is None or view.mode.default is Mode.DRY_RUN

            removed = self.backend.unblock_matching(lifted)
            for key in removed:
                self.held.pop(key, None)
            if added is not None:  # the registered set changed: some passed flows may have lost it
                self._block_passed_flows_no_longer_registered()
            return removed

    def _block_passed_flows_no_longer_registered(self) -> None:
        # called under self.lock with the new view in place
        now = self.clock.now()
        for ongoing, flow in list(self.passed.items()):
            protocol = flow.protocol
            decision = decide(
                flow=flow.key,
                vpn_protocol=protocol,
                index=self.view.index,
                home=self.home,
                dry_run=self.enforce is EnforceKind.DRY_RUN or self.view.dry_run(protocol),
                feed_serial=self.view.serial,
                now=now,
            )
            if decision.verdict is Verdict.REGISTERED:
                continue
            del self.passed[ongoing]
            if decision.action is Action.BLOCK:
                self.backend.block(decision.block_keys)
                for block in decision.block_keys:
                    self.held.setdefault(block, HeldBlock(protocol)).conversations.add(ongoing)
            # Decided again, so explained again: the verdict log says why it now stops.
            self.totals.verdicts[decision.verdict.value] += 1
            if self.verdicts is not None:
                self.verdicts.write(
                    verdict_line(
                        record=flow.record,
                        classification=flow.classification,
                        decision=decision,
                        source=self.source,
                        time=now,
                    )
                )

    def set_mode(self, mode: EnforcementMode | None) -> tuple[BlockKey, ...]:
        """A new effective mode for the held state (staleness); lifts what it puts in dry-run."""
        if mode == self.view.mode:
            return ()
        return self.update_feed(self.view.state, mode)

    # -- configuration -------------------------------------------------------------------------

    def reconfigure(
        self,
        *,
        home: Iterable[Network],
        enforce: EnforceKind,
        retention_days: int | None = None,
        rotate_bytes: int | None = None,
    ) -> None:
        """Apply a reloaded configuration; the held feed stays."""
        with self.lock:
            self.home = tuple(home)
            if self.verdicts is not None and retention_days is not None and rotate_bytes:
                self.verdicts.configure(retention_days=retention_days, rotate_bytes=rotate_bytes)
            if enforce is not self.enforce:
                if self._factory is None:
                    raise ValueError("this gateway cannot change its enforcement back end")
                new = self._factory(enforce)
                self.backend.stop()
                new.start()
                self.backend, self.enforce = new, enforce
                self.held.clear()

    # -- flows -----------------------------------------------------------------------------------

    def handle(self, record: FlowRecord) -> Decision | None:
        """Decide one flow record; returns the decision for VPN flows and unconfirmed ones (passed
        and recorded), None otherwise."""
        if record.continuation:
            self._continuation_ended(record)
            return None
        flow = record.features
        self.totals.flows += 1
        if self.metrics is not None:
            self.metrics.flows_seen.inc()
        classification = classify(flow, self.context)
        self.context.observe(flow, classification)
        if not classification.vpn and not classification.unconfirmed:
            self.totals.verdicts[Verdict.NOT_VPN.value] += 1
            if self.metrics is not None:
                self.metrics.verdicts.labels(Verdict.NOT_VPN.value, Action.PASS.value).inc()
            return None
        # an unconfirmed flow is decided (never blocked) and recorded under the suspected protocol
        unconfirmed = classification.unconfirmed
        protocol = (classification.suspected if unconfirmed else classification.vpn_protocol).value
        key = FlowKey(
            ipaddress.ip_address(flow.src_ip),
            flow.src_port,
            ipaddress.ip_address(flow.dst_ip),
            flow.dst_port,
            flow.protocol,
        )
        now = self.clock.now()
        with self.lock:
            view = self.view
            decision = decide(
                flow=key,
                vpn_protocol=protocol,
                index=view.index,
                home=self.home,
                dry_run=self.enforce is EnforceKind.DRY_RUN or view.dry_run(protocol),
                feed_serial=view.serial,
                # the gateway's own clock: an entry's signed end holds even on a stale feed
                now=now,
                unconfirmed=unconfirmed,
            )
            if decision.action is Action.BLOCK or (
                decision.action is Action.REPORT and self.enforce is EnforceKind.DRY_RUN
            ):
                # the dry-run back end only records; a kill-switched nftables one gets nothing
                self.backend.block(decision.block_keys)
                if record.handover is Handover.DETECTION:
                    for block in decision.block_keys:
                        held = self.held.setdefault(block, HeldBlock(protocol))
                        held.conversations.add(conversation(record))
            elif decision.verdict is Verdict.REGISTERED and record.handover is Handover.DETECTION:
                self.passed[conversation(record)] = _Passed(key, protocol, record, classification)
        if self.verdicts is not None:
            self.verdicts.write(
                verdict_line(
                    record=record,
                    classification=classification,
                    decision=decision,
                    source=self.source,
                    time=now,
                )
            )
        if self.reporter is not None:
            self.reporter.observe(
                decision=decision, flow=key, vpn_protocol=protocol, home=self.home, now=now
            )
        if not unconfirmed:
            self.totals.vpn += 1
        self.totals.verdicts[decision.verdict.value] += 1
        if self.metrics is not None:
            if not unconfirmed:
                self.metrics.vpn_flows.labels(protocol).inc()
            self.metrics.verdicts.labels(decision.verdict.value, decision.action.value).inc()
            if self.live:
                handed_ms = record.first_seen_ms + record.ms_to_verdict
                lag = (now - dt.datetime.fromtimestamp(handed_ms / 1000, dt.UTC)).total_seconds()
                self.metrics.processing_lag.observe(max(0.0, lag))
        return decision

    def _continuation_ended(self, record: FlowRecord) -> None:
        # A continuation cut by the active timeout goes on as a new continuation: keep its blocks.
        if record.features.duration_ms >= self.active_timeout_ms - 1000:
            return
        ended = conversation(record)
        with self.lock:
            self.passed.pop(ended, None)
            for key in [k for k, h in self.held.items() if ended in h.conversations]:
                held = self.held[key]
                held.conversations.discard(ended)
                if not held.conversations:
                    del self.held[key]

    def refresh_blocks(self) -> int:
        """Renew the timeout of every block whose flow is still going; returns how many."""
        with self.lock:
            keys = [k for k, h in self.held.items() if not self.view.dry_run(h.protocol)]
            if self.enforce is EnforceKind.DRY_RUN:
                keys = list(self.held)
            if keys:
                self.backend.block(keys)
            return len(keys)

    # -- metrics callbacks -------------------------------------------------------------------------

    def _count_blocks(self) -> float:
        with self.lock:
            try:
                return float(len(self.backend.active_blocks()))
            except Exception:  # a scrape must not fail because nft could not be asked
                return float("nan")

    def _feed_age(self) -> float:
        state = self.view.state
        if state is None:
            return -1.0
        return (self.clock.now() - state.created).total_seconds()
