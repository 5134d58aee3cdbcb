"""The `vpnreg gateway` process: wires the flow source, the feed client, the pipeline, the back
end, the metrics server and the signals together.

Threads: the main thread reads flow records (NFStream forks its meters from it) and decides; the
feed thread runs `FeedClient.run` and swaps the allowlist; a housekeeping thread applies SIGHUP
reloads, staleness changes of the mode and block refreshes. Signal handlers only set events; a
SIGTERM/SIGINT that arrives while the main thread waits for the meter interrupts that wait (the
streamer stops its meters on KeyboardInterrupt), so the agent exits promptly on an idle link.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, start_http_server

from vpnreg.agent import config as config_mod
from vpnreg.agent.config import ConfigError, EnforceKind, GatewayConfig
from vpnreg.agent.ctcapture import BLOCKED_MARK, CaptureInstaller, SubprocessIp
from vpnreg.agent.enforce import DryRunBackend, EnforcementBackend
from vpnreg.agent.feedclient import FeedClient, FeedMetrics, Timers, load_public_keys
from vpnreg.agent.flows import FlowRecord
from vpnreg.agent.gateway import Gateway
from vpnreg.agent.metrics import GatewayMetrics
from vpnreg.agent.nft import NftablesBackend, SubprocessNft
from vpnreg.agent.reporter import HttpTransport, Reporter, ReportTransport
from vpnreg.agent.verdictlog import VerdictLog
from vpnreg.clock import Clock
from vpnreg.feedkeys import FeedKeyError

_LOG = logging.getLogger("vpnreg.gateway")
HOUSEKEEPING_S = 0.2
PROGRESS_S = 0.5

FlowSource = Callable[[GatewayConfig], Iterable[FlowRecord]]


class GatewayError(Exception):
    """A start-up problem to report in one line (exit 1)."""


def nfstream_source(cfg: GatewayConfig) -> Iterable[FlowRecord]:
    from vpnreg.agent.flows import iter_flows

    source = cfg.pcap if cfg.pcap is not None else cfg.capture_source
    # NFStream forks its meter on the first flow. Objects frozen before the fork are never
    # visited by either process's collector, so the pages holding them stay shared instead of
    # being copied when a collection writes to them (about a fifth of the process tree's
    # proportional memory, measured by bench/bench_gateway.py).
    gc.collect()
    gc.freeze()
    return iter_flows(source, include_continuations=True)


def make_backend(
    kind: EnforceKind,
    *,
    clock: Clock,
    timeout_s: int,
    table: str = "vpnreg",
    blocked_mark: int | None = None,
) -> EnforcementBackend:
    if kind is EnforceKind.NFTABLES:
        return NftablesBackend(
            SubprocessNft(), timeout=timeout_s, name=table, blocked_mark=blocked_mark
        )
    return DryRunBackend(clock, timeout=timeout_s)


@dataclass
class Interrupt:
    """Whether the main thread is inside the meter's blocking wait (safe to interrupt)."""

    waiting: bool = False


class GatewayDaemon:
    def __init__(
        self,
        *,
        config_path: Path | None,
        overrides: Mapping[str, Any],
        clock: Clock,
        flow_source: FlowSource = nfstream_source,
        backend_factory: Callable[[EnforceKind], EnforcementBackend] | None = None,
        feed_client: FeedClient | None = None,
        report_transport: ReportTransport | None = None,
        registry: CollectorRegistry | None = None,
        err: TextIO = sys.stderr,
    ) -> None:
        self.config_path = config_path
        self.overrides = dict(overrides)
        self.config = config_mod.load(config_path, self.overrides)
        self.clock = clock
        self.err = err
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.registry = registry if registry is not None else CollectorRegistry()
        self._flow_source = flow_source
        cfg = self.config
        capture = cfg.conntrack_capture
        self._factory = backend_factory or (
            lambda kind: make_backend(
                kind,
                clock=clock,
                timeout_s=cfg.block_timeout_s,
                table=cfg.enforce_table,
                blocked_mark=None if capture is None else BLOCKED_MARK,
            )
        )
        self.capture = (
            None
            if capture is None
            else CaptureInstaller(capture, nft=SubprocessNft(), ip=SubprocessIp())
        )
        if feed_client is None:
            try:
                trusted = load_public_keys(cfg.trust)
            except (OSError, ValueError, FeedKeyError) as exc:
                raise GatewayError(f"cannot read trusted keys: {exc}") from exc
            feed_client = FeedClient(
                source=cfg.feed,
                trusted=trusted,
                state_dir=cfg.state_dir,
                clock=clock,
                token=cfg.token,
                timers=Timers(
                    refresh_s=cfg.refresh_s,
                    retry_s=cfg.feed_retry_s,
                    expire_s=cfg.feed_expire_s,
                    on_stale=cfg.on_stale.value,
                ),
                metrics=FeedMetrics(self.registry),
                logger=_LOG,
                max_bytes=cfg.feed_max_bytes,
            )
        self.feed = feed_client
        verdicts = None
        if cfg.verdicts is not None:
            verdicts = VerdictLog(
                cfg.verdicts,
                clock=clock,
                retention_days=cfg.retention_days,
                rotate_bytes=cfg.rotate_bytes,
            )
        self.reporter: Reporter | None = None
        self._http_transport: HttpTransport | None = None
        if cfg.report_url is not None and cfg.gateway_id is not None:
            if report_transport is None:
                report_transport = self._http_transport = HttpTransport(cfg.report_url, cfg.token)
            self.reporter = Reporter(
                gateway_id=cfg.gateway_id,
                spool_dir=cfg.state_dir / "reports",
                transport=report_transport,
                max_spooled=cfg.report_max_spooled,
            )
        self.gateway = Gateway(
            backend=self._factory(cfg.enforce),
            enforce=cfg.enforce,
            home=cfg.home,
            clock=clock,
            source=cfg.pcap.name if cfg.pcap is not None else cfg.source_label,
            verdicts=verdicts,
            metrics=GatewayMetrics(self.registry),
            live=cfg.interface is not None,
            backend_factory=self._factory,
            reporter=self.reporter,
        )
        self._interrupt = Interrupt()
        self._threads: list[threading.Thread] = []

    # -- signals -----------------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, lambda _s, _f: self.reload_event.set())

    def _on_stop_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop_event.set()
        if self._interrupt.waiting:
            raise KeyboardInterrupt

    # -- reload ------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the configuration file and apply what may change while running."""
        try:
            new = config_mod.load(self.config_path, self.overrides)
        except ConfigError as exc:
            _LOG.error("reload refused, configuration kept: %s", exc)
            return False
        self.gateway.reconfigure(
            home=new.home,
            enforce=new.enforce,
            retention_days=new.retention_days,
            rotate_bytes=new.rotate_bytes,
        )
        kept = [
            k for k in ("feed", "pcap", "interface", "trust", "state_dir", "metrics_port",
                        "capture", "capture_packets", "shards", "shard")
            if getattr(new, k) != getattr(self.config, k)
        ]  # fmt: skip
        if kept:
            _LOG.warning("reload: %s change only on restart", ", ".join(kept))
        self.config = new
        _LOG.info(
            "configuration reloaded: home %s, enforce %s", list(map(str, new.home)), new.enforce
        )
        return True

    def housekeeping_once(self, *, refresh_due: bool = False) -> None:
        if self.reload_event.is_set():
            self.reload_event.clear()
            self.reload()
        self.gateway.set_mode(self.feed.effective_mode())
        if refresh_due:
            self.gateway.refresh_blocks()

    def _housekeeping(self) -> None:
        refresh_every = max(1.0, self.config.block_timeout_s / 3)
        last_refresh = time.monotonic()
        while not self.stop_event.wait(HOUSEKEEPING_S):
            due = time.monotonic() - last_refresh >= refresh_every
            if due:
                last_refresh = time.monotonic()
            try:
                self.housekeeping_once(refresh_due=due)
            except Exception:
                _LOG.exception("housekeeping failed")

    def _feed_loop(self) -> None:
        def on_update(state: Any) -> None:
            removed = self.gateway.update_feed(state, self.feed.effective_mode())
            _LOG.info("feed serial %s applied; %d blocks lifted", state.serial, len(removed))

        while not self.stop_event.is_set():
            try:
                self.feed.run(self.stop_event, on_update)
            except Exception:
                _LOG.exception("feed update failed; retrying")
                self.stop_event.wait(self.config.feed_retry_s)

    def report_once(self) -> None:
        """Send one report (and whatever is spooled); never raises (Reporter.tick)."""
        if self.reporter is not None:
            self.reporter.tick(
                now=self.clock.now(), feed=self.gateway.view.state, mode=self.gateway.enforce.value
            )

    def _report_loop(self) -> None:
        while not self.stop_event.wait(self.config.report_interval_s):
            self.report_once()

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        result = self.feed.poll()
        if result.error:
            _LOG.warning("feed: %s", result.error)
        if self.feed.state is None:
            _LOG.warning("no verified feed held: every VPN flow is only reported until one arrives")
        started = time.monotonic()
        self.gateway.start()
        _LOG.info("back end %s started in %.3f s", cfg.enforce, time.monotonic() - started)
        self.gateway.update_feed(self.feed.state, self.feed.effective_mode())
        if self.capture is not None:
            self.capture.start()
            _LOG.info(
                "conntrack capture on %s: %d packets per direction to %s",
                cfg.interface, cfg.capture_packets, self.capture.capture.device,
            )  # fmt: skip
        if cfg.metrics_port is not None:
            start_http_server(cfg.metrics_port, addr=cfg.metrics_address, registry=self.registry)
        if cfg.interface is not None:
            loops = [self._feed_loop, self._housekeeping]
            if self.reporter is not None:
                loops.append(self._report_loop)
            for target in loops:
                thread = threading.Thread(target=target, name=target.__name__, daemon=True)
                thread.start()
                self._threads.append(thread)

    def process(self) -> None:
        """Read flow records until the source ends or a stop is requested."""
        before = set(multiprocessing.active_children())
        records: Iterator[FlowRecord] = iter(self._flow_source(self.config))
        progress = _Progress(self.err, self.gateway) if self.config.pcap is not None else None
        try:
            while not self.stop_event.is_set():
                self._interrupt.waiting = True
                try:
                    record = next(records)
                except StopIteration:
                    break
                finally:
                    self._interrupt.waiting = False
                self.gateway.handle(record)
                if progress is not None:
                    progress.tick()
        except KeyboardInterrupt:
            self.stop_event.set()
        finally:
            close = getattr(records, "close", None)
            if callable(close):
                close()
            _end_children(before)
            if progress is not None:
                progress.clear()

    def shutdown(self) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=2)
        try:
            self.gateway.stop(fail_open=self.config.fail_open_on_stop)
        finally:
            if self.capture is not None:  # what the agent installed goes, whatever happened
                self.capture.stop()
        self.feed.close()
        # the counts since the last report are spooled (and sent if the registry answers)
        self.report_once()
        if self._http_transport is not None:
            self._http_transport.close()

    def summary(self) -> str:
        serial = self.gateway.view.serial
        feed = "no feed" if serial is None else f"feed serial {serial}"
        return (
            f"vpnreg gateway: {self.config.source_label}: {self.gateway.totals.summary()} "
            f"({feed}, {self.config.enforce})"
        )


def _end_children(before: set[multiprocessing.process.BaseProcess]) -> None:
    """End the meter processes the flow source forked. NFStream ends them only when the stop
    lands inside its own loop; closing its generator (a stop while a record is being decided)
    leaves them capturing, and the interpreter would then wait for them at exit forever. SIGTERM
    (their default action, see vpnreg.agent.children), then SIGKILL for one still there."""
    for child in set(multiprocessing.active_children()) - before:
        child.terminate()
        child.join(timeout=1)
        if child.is_alive():
            child.kill()
            child.join(timeout=1)


class _Progress:
    """A progress line on stderr, only when it is a terminal; the summary is printed anyway."""

    def __init__(self, err: TextIO, gateway: Gateway) -> None:
        self.err, self.gateway = err, gateway
        self.tty = err.isatty()
        self.last = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if self.tty and now - self.last >= PROGRESS_S:
            self.last = now
            self.err.write("\r" + self.gateway.totals.summary() + "\x1b[K")
            self.err.flush()

    def clear(self) -> None:
        if self.tty:
            self.err.write("\r\x1b[K")
            self.err.flush()


def run(daemon: GatewayDaemon, *, signals: bool = True) -> int:
    """Start, process until the end or a signal, stop; returns the exit code."""
    if signals:
        daemon.install_signals()
    try:
        daemon.start()
        daemon.process()
    finally:
        daemon.shutdown()
    daemon.err.write(daemon.summary() + "\n")
    daemon.err.flush()
    return 0
