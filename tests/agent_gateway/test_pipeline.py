"""The gateway pipeline over a fake flow source: verdict log, metrics, kill switch, unblocking,
reload, rotation and retention; the allowlist index against brute force."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tests.agent_gateway.feeds import Signer, entry, replace_file
from tests.core.feed.strategies import entry_sets
from vpnreg.agent.config import EnforceKind
from vpnreg.agent.daemon import GatewayDaemon
from vpnreg.agent.enforce import DryRunBackend, EnforcementBackend
from vpnreg.agent.flows import FlowRecord, Handover
from vpnreg.agent.gateway import Gateway
from vpnreg.agent.metrics import GatewayMetrics
from vpnreg.agent.verdictlog import VerdictLog
from vpnreg.clock import FrozenClock
from vpnreg.core.allowlist import AllowlistIndex, registration
from vpnreg.core.classify import FlowFeatures
from vpnreg.core.feed import AllowlistEntry, EnforcementMode, EntryTable, Mode, VpnProtocol
from vpnreg.core.policy import BlockKey, Registration, SimpleIndex

ip = ipaddress.ip_address
net = ipaddress.ip_network
HOME = (net("198.51.100.0/24"),)
CLIENT, SERVER = "198.51.100.2", "203.0.113.2"

#: The jsonl fields of `vpnreg classify` (cli/classify.py verdict_rows), in order.
CLASSIFY_FIELDS = [
    "file", "src_ip", "src_port", "dst_ip", "dst_port", "ip_protocol", "application", "category",
    "confidence", "vpn", "vpn_protocol", "basis", "classification_rule", "handover",
    "packets_to_verdict", "ms_to_verdict",
]  # fmt: skip
LOG_FIELDS = [
    *CLASSIFY_FIELDS, "time", "verdict", "action", "rule", "registration_id", "feed_serial",
]  # fmt: skip


def wg(src: str = CLIENT, sport: int = 40000, dst: str = SERVER, continuation: bool = False,
       duration_ms: int = 0) -> FlowRecord:  # fmt: skip
    features = FlowFeatures(
        ip_version=4, src_ip=src, src_port=sport, dst_ip=dst, dst_port=51820, protocol=17,
        wireguard_handshake=not continuation, duration_ms=duration_ms,
    )  # fmt: skip
    return FlowRecord(features, Handover.DETECTION, 2, 3, 1_768_467_599_000, continuation)


def web(src: str = CLIENT) -> FlowRecord:
    features = FlowFeatures(
        ip_version=4, src_ip=src, src_port=41000, dst_ip=SERVER, dst_port=443, protocol=6,
        application_name="TLS.Google", category_name="Web", confidence=6,
    )  # fmt: skip
    return FlowRecord(features, Handover.DETECTION, 6, 40, 1_768_467_599_000)


WG_KEY = BlockKey(ip(CLIENT), ip(SERVER), 17, 51820)


class Made:
    def __init__(self, tmp_path: Path, clock: FrozenClock, enforce: EnforceKind) -> None:
        self.signer = Signer(tmp_path)
        self.clock = clock
        self.backend = DryRunBackend(clock)
        self.registry = CollectorRegistry()
        self.log = VerdictLog(tmp_path / "verdicts.jsonl", clock=clock)
        self.gateway = Gateway(
            backend=self.backend, enforce=enforce, home=HOME, clock=clock, source="test",
            verdicts=self.log, metrics=GatewayMetrics(self.registry), live=True,
        )  # fmt: skip
        self.gateway.start()

    def feed(self, *entries: object, serial: int = 1, mode: Mode = Mode.ENFORCE) -> None:
        raw = self.signer.snapshot(
            entries, serial=serial, created=self.clock.now() - dt.timedelta(minutes=1),  # type: ignore[arg-type]
            mode=EnforcementMode(mode),
        )  # fmt: skip
        state = self.signer.state(raw, self.clock.now())
        self.gateway.update_feed(state, state.mode)

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.log.path.read_text().splitlines()]


@pytest.fixture
def made(tmp_path: Path, clock: FrozenClock) -> Iterator[Made]:
    m = Made(tmp_path, clock, EnforceKind.NFTABLES)
    yield m
    m.log.close()


def test_verdict_log_fields_exact_and_only_vpn_flows(made: Made) -> None:
    made.feed(serial=4)
    made.gateway.handle(web())
    assert made.log.path.read_text() == ""  # non-VPN flows are never written
    decision = made.gateway.handle(wg())
    assert decision is not None and decision.block_keys == (WG_KEY,)
    # flushed when written: another reader sees the line before anything is closed
    (line,) = made.lines()
    assert list(line) == LOG_FIELDS
    assert line["time"] == "2026-01-15T09:00:00.000Z"
    assert (line["verdict"], line["action"], line["rule"]) == (
        "unregistered", "block", "not-registered",
    )  # fmt: skip
    assert (line["classification_rule"], line["vpn_protocol"], line["feed_serial"]) == (
        "wireguard-msg", "wireguard", 4,
    )  # fmt: skip
    assert line["registration_id"] is None and line["file"] == "test"


def test_classify_fields_match_the_classify_command(shared_dir: Path) -> None:
    from vpnreg.cli.classify import verdict_rows

    row = next(iter(verdict_rows(shared_dir / "corpus/ndpi/esp.pcapng", label="x")))
    assert list(row) == CLASSIFY_FIELDS


def test_metrics(made: Made, clock: FrozenClock) -> None:
    made.feed(entry("198.51.100.0/25", 11), serial=9)
    clock.advance(dt.timedelta(seconds=30))
    made.gateway.handle(web())
    made.gateway.handle(wg())  # registered
    made.gateway.handle(wg(src="198.51.100.200"))  # not registered: blocked
    assert made.metric("vpnreg_gateway_flows_total") == 3
    assert made.metric("vpnreg_gateway_vpn_flows_total", protocol="wireguard") == 2
    assert made.metric("vpnreg_gateway_verdicts_total", verdict="registered", action="pass") == 1
    assert made.metric("vpnreg_gateway_verdicts_total", verdict="unregistered", action="block") == 1
    assert made.metric("vpnreg_gateway_verdicts_total", verdict="not-vpn", action="pass") == 1
    assert made.metric("vpnreg_gateway_blocks_active") == 1
    assert made.metric("vpnreg_gateway_feed_serial") == 9
    assert made.metric("vpnreg_gateway_feed_age_seconds") == 90
    # hand-over at first_seen + 3 ms = 08:59:59.003; decided at 09:00:30
    assert made.metric("vpnreg_gateway_processing_lag_seconds_sum") == pytest.approx(2 * 30.997)
    assert made.metric("vpnreg_gateway_processing_lag_seconds_count") == 2


@pytest.mark.parametrize(
    ("feed_mode", "enforce", "blocked", "action"),
    [
        (Mode.ENFORCE, EnforceKind.NFTABLES, True, "block"),
        (Mode.DRY_RUN, EnforceKind.NFTABLES, False, "report"),  # the kill switch
        (Mode.ENFORCE, EnforceKind.DRY_RUN, False, "report"),
    ],
    ids=["enforce", "feed-kill-switch", "local-dry-run"],
)
def test_kill_switch(
    tmp_path: Path, clock: FrozenClock, feed_mode: Mode, enforce: EnforceKind, blocked: bool,
    action: str,
) -> None:  # fmt: skip
    m = Made(tmp_path, clock, enforce)
    m.feed(mode=feed_mode)
    m.gateway.handle(wg())
    assert m.lines()[0]["action"] == action
    enforced = [k for _, k in m.backend.would_block] if enforce is EnforceKind.NFTABLES else []
    assert enforced == ([WG_KEY] if blocked else [])
    m.log.close()


def test_per_protocol_kill_switch_lifts_existing_blocks(made: Made) -> None:
    made.feed(serial=1)
    made.gateway.handle(wg())
    assert [a.key for a in made.backend.active_blocks()] == [WG_KEY]
    mode = EnforcementMode(Mode.ENFORCE, {"wireguard": Mode.DRY_RUN})
    assert made.gateway.set_mode(mode) == (WG_KEY,)
    assert made.backend.active_blocks() == ()


def test_no_feed_blocks_nothing(made: Made) -> None:
    made.gateway.handle(wg())
    assert made.lines()[0]["action"] == "report"
    assert made.backend.active_blocks() == ()


def test_registration_lifts_blocks(made: Made) -> None:
    made.feed(serial=1)
    other = BlockKey(ip("198.51.100.77"), ip(SERVER), 17, 51820)
    made.gateway.handle(wg())
    made.gateway.handle(wg(src="198.51.100.77"))
    assert {a.key for a in made.backend.active_blocks()} == {WG_KEY, other}
    made.feed(entry(f"{CLIENT}/32", 5), serial=2)
    assert [a.key for a in made.backend.active_blocks()] == [other]
    assert made.gateway.held.keys() == {other}
    decision = made.gateway.handle(wg(sport=40001))
    assert decision is not None and decision.registration_id == 5


def test_registration_with_peers_lifts_only_listed_peers(made: Made) -> None:
    made.feed(serial=1)
    made.gateway.handle(wg())
    made.feed(entry(f"{CLIENT}/32", 5, "192.0.2.0/24"), serial=2)
    assert [a.key for a in made.backend.active_blocks()] == [WG_KEY]
    made.feed(entry(f"{CLIENT}/32", 5, "192.0.2.0/24", "203.0.113.0/24"), serial=3)
    assert made.backend.active_blocks() == ()


def test_an_entry_ends_at_its_signed_time_by_the_gateway_clock(
    made: Made, clock: FrozenClock
) -> None:
    """Expiry is enforced by the gateway itself: the held copy is not refreshed (stale feed)."""
    end = clock.now() + dt.timedelta(hours=2)
    made.feed(replace(entry(f"{CLIENT}/32", 5), valid_until=end), serial=1)
    before = made.gateway.handle(wg())
    assert before is not None and before.verdict.value == "registered"
    clock.advance(dt.timedelta(hours=2))
    after = made.gateway.handle(wg(sport=40001))
    assert after is not None and after.rule.value == "not-registered"
    assert "registration 5 ended" in after.explanation
    assert after.block_keys == (WG_KEY,)


def test_a_shared_cgnat_address_blocks_only_the_unregistered_subscriber(made: Made) -> None:
    """Two subscribers behind one address, the registered one on ports 1024-2047: the other's
    WireGuard flow to the same server is blocked by a key that carries its own port."""
    made.feed(replace(entry(f"{CLIENT}/32", 5), ports=(1024, 2047)), serial=1)
    registered = made.gateway.handle(wg(sport=1500))
    assert registered is not None and registered.registration_id == 5
    blocked = made.gateway.handle(wg(sport=3000))
    assert blocked is not None and blocked.verdict.value == "unregistered"
    cgnat_key = BlockKey(ip(CLIENT), ip(SERVER), 17, 51820, 3000)
    assert [a.key for a in made.backend.active_blocks()] == [cgnat_key]
    # a new registration for the other subscriber's port block lifts that block
    made.feed(
        replace(entry(f"{CLIENT}/32", 5), ports=(1024, 2047)),
        replace(entry(f"{CLIENT}/32", 6), ports=(2048, 3071)),
        serial=2,
    )
    assert made.backend.active_blocks() == ()


def test_a_passed_flow_is_blocked_when_the_feed_no_longer_registers_it(made: Made) -> None:
    """An Accounting Stop ends a binding while its tunnel runs: the meter never hands that flow
    over again, so the feed update itself blocks it; a flow whose registration
    stays, or that ended, is left alone."""
    ranged = replace(entry(f"{CLIENT}/32", 5), ports=(1024, 2047))
    made.feed(ranged, entry("198.51.100.9/32", 7), serial=1)
    for record in (wg(sport=1500), wg(sport=1600), wg(src="198.51.100.9")):
        decision = made.gateway.handle(record)
        assert decision is not None and decision.verdict.value == "registered"
    made.gateway.handle(wg(sport=1600, continuation=True, duration_ms=5_000))  # ended idle
    assert made.backend.active_blocks() == ()
    lines_before = len(made.lines())
    made.feed(entry("198.51.100.9/32", 7), serial=2)  # the binding's entry is gone
    # no port-ranged entry covers the address any more: the policy's key carries no local port
    assert [a.key for a in made.backend.active_blocks()] == [WG_KEY]
    # decided again, so explained again: one verdict line for the flow it now blocks
    [line] = made.lines()[lines_before:]
    assert (line["src_port"], line["verdict"], line["action"]) == (1500, "unregistered", "block")
    assert line["rule"] == "not-registered" and line["feed_serial"] == 2
    assert made.gateway.refresh_blocks() == 1  # held until the flow's continuation ends
    made.gateway.handle(wg(sport=1500, continuation=True, duration_ms=5_000))
    assert made.gateway.refresh_blocks() == 0
    # registered again (a new Start): the block is lifted as any other
    made.feed(ranged, entry("198.51.100.9/32", 7), serial=3)
    assert made.backend.active_blocks() == ()


def test_a_protocol_the_registration_does_not_list_is_blocked(made: Made) -> None:
    made.feed(
        replace(entry(f"{CLIENT}/32", 5), protocols=frozenset({VpnProtocol.OPENVPN})), serial=1
    )
    decision = made.gateway.handle(wg())
    assert decision is not None and decision.rule.value == "protocol-not-registered"
    assert decision.registration_id == 5 and decision.block_keys == (WG_KEY,)
    assert made.lines()[-1]["rule"] == "protocol-not-registered"


def test_blocks_refreshed_until_the_flow_ends(made: Made, clock: FrozenClock) -> None:
    made.feed(serial=1)
    made.gateway.handle(wg())
    clock.advance(dt.timedelta(minutes=8))
    assert made.gateway.refresh_blocks() == 1
    clock.advance(dt.timedelta(minutes=8))  # 16 min after the first block: alive by refresh
    assert [a.key for a in made.backend.active_blocks()] == [WG_KEY]
    # active-timeout cut: the tunnel goes on, keep refreshing
    made.gateway.handle(wg(src=SERVER, sport=51820, dst=CLIENT, continuation=True,
                           duration_ms=1_800_000))  # fmt: skip
    assert made.gateway.refresh_blocks() == 1
    # idle end, seen reversed: the flow is over, its block expires by itself
    made.gateway.handle(wg(continuation=True, duration_ms=5_000))
    assert made.gateway.refresh_blocks() == 0
    clock.advance(dt.timedelta(minutes=11))
    assert made.backend.active_blocks() == ()


def test_rotation_and_retention(tmp_path: Path, clock: FrozenClock) -> None:
    log = VerdictLog(tmp_path / "v.jsonl", clock=clock, retention_days=2, rotate_bytes=1024)
    for _ in range(30):
        log.write({"time": clock.now().isoformat().replace("+00:00", "Z"), "pad": "x" * 100})
    rotated = log.rotated()
    assert len(rotated) >= 2
    assert all(p.stat().st_size <= 1024 for _, p in rotated)
    clock.advance(dt.timedelta(days=1))
    log.write({"time": "2026-01-16T09:00:00Z"})  # a new day rotates
    assert len(log.rotated()) == len(rotated) + 1
    assert (tmp_path / "v.jsonl").read_text().count("\n") == 1
    clock.advance(dt.timedelta(days=2))
    deleted = log.prune()
    assert sorted(deleted) == sorted(p for _, p in rotated)  # older than 2 days
    assert len(log.rotated()) == 1
    log.configure(retention_days=1, rotate_bytes=1024)  # a reload prunes at once
    assert log.rotated() == []
    log.close()


def test_existing_log_of_another_day_rotates_on_first_write(
    tmp_path: Path, clock: FrozenClock
) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text('{"time":"2026-01-14T23:59:59.000Z"}\n')
    log = VerdictLog(path, clock=clock)
    log.write({"time": "2026-01-15T09:00:00.000Z"})
    assert path.stat().st_mode & 0o777 == 0o640
    log.close()
    assert [p.name for _, p in log.rotated()] == ["v.20260115T090000Z.jsonl"]


# -- the allowlist index ---------------------------------------------------------------------


def test_index_returns_all_covering_most_specific_first() -> None:
    regs = [
        Registration(3, net("198.51.100.0/24")),
        Registration(1, net("198.51.100.0/25")),
        Registration(2, net("198.51.100.0/25"), (net("203.0.113.0/24"),)),
        Registration(4, net("198.51.100.128/25")),
        Registration(5, net("2001:db8::/32")),
    ]
    index = AllowlistIndex(regs)
    assert [r.registration_id for r in index.covering(ip("198.51.100.5"))] == [1, 2, 3]
    assert [r.registration_id for r in index.covering(ip("198.51.100.200"))] == [4, 3]
    assert [r.registration_id for r in index.covering(ip("2001:db8::1"))] == [5]
    assert index.covering(ip("192.0.2.1")) == ()
    assert len(index) == 5


prefixes = st.builds(
    lambda a, n: net((a, n), strict=False),
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 32),
)


v4_probes = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6_probes = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@given(st.lists(prefixes, max_size=12), st.lists(st.integers(0, 2**32 - 1), max_size=20))
def test_index_agrees_with_linear_search(
    nets: list[ipaddress.IPv4Network], probes: list[int]
) -> None:
    regs = [Registration(i + 1, n) for i, n in enumerate(nets)]
    fast, slow = AllowlistIndex(regs), SimpleIndex(regs)
    for n in nets:
        probes.append(int(n.network_address))
    for p in probes:
        address = ipaddress.IPv4Address(p)
        assert list(fast.covering(address)) == list(slow.covering(address))


@given(entry_sets, st.lists(st.one_of(v4_probes, v6_probes), max_size=20))
def test_index_from_records_agrees_with_the_registrations(
    entries: list[AllowlistEntry], probes: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> None:
    """from_entries reads the records (ADR 0011) and decodes only what a lookup lands on: the
    same registrations, in the same order, as the index of the decoded entries."""
    table = EntryTable.from_entries(entries)
    fast = AllowlistIndex.from_entries(table)
    slow = SimpleIndex([registration(e) for e in table.to_entries()])
    assert len(fast) == len(table)
    for e in entries:
        probes.append(e.prefix.network_address)
        probes.append(e.prefix.broadcast_address)
    for address in probes:
        expected = sorted(
            slow.covering(address), key=lambda r: (-r.prefix.prefixlen, r.registration_id)
        )
        assert list(fast.covering(address)) == expected


# -- configuration and reload ------------------------------------------------------------------


class FakeFeed:
    def __init__(self) -> None:
        self.state = None

    def poll(self) -> object:
        from vpnreg.agent.feedclient import PollResult, PollStatus

        return PollResult(PollStatus.UNCHANGED, None)

    def effective_mode(self) -> None:
        return None

    def close(self) -> None:
        pass


def write_config(path: Path, home: str, enforce: str, retention: int = 30) -> None:
    path.write_text(
        f'feed = "/nonexistent/feed.json"\ntrust = ["/nonexistent/feed.pub"]\n'
        f'home = ["{home}"]\nenforce = "{enforce}"\nretention_days = {retention}\n'
    )


def test_sighup_reload_rereads_file_keeps_overrides(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "gw.toml"
    write_config(conf, "198.51.100.0/24", "dry-run")
    made: list[EnforceKind] = []

    def factory(kind: EnforceKind) -> EnforcementBackend:
        made.append(kind)
        return DryRunBackend(clock)

    records = [wg()]
    daemon = GatewayDaemon(
        config_path=conf,
        overrides={"pcap": tmp_path / "x.pcap", "verdicts": tmp_path / "v.jsonl"},
        clock=clock, flow_source=lambda _cfg: records, backend_factory=factory,
        feed_client=FakeFeed(),  # type: ignore[arg-type]
        registry=CollectorRegistry(), err=io.StringIO(),
    )  # fmt: skip
    daemon.start()
    write_config(conf, "192.0.2.0/24", "nftables", retention=3)
    daemon.reload_event.set()  # what the SIGHUP handler does
    daemon.housekeeping_once()
    assert daemon.gateway.home == (net("192.0.2.0/24"),)
    assert daemon.gateway.enforce is EnforceKind.NFTABLES and made == [
        EnforceKind.DRY_RUN, EnforceKind.NFTABLES,
    ]  # fmt: skip
    assert daemon.gateway.verdicts is not None and daemon.gateway.verdicts.retention_days == 3
    assert daemon.config.pcap == tmp_path / "x.pcap"  # the command line still wins
    # a broken file is refused and the running configuration kept: not TOML, then a bad value
    conf.write_text("home = [")
    daemon.reload_event.set()
    daemon.housekeeping_once()
    assert daemon.gateway.home == (net("192.0.2.0/24"),)
    write_config(conf, "203.0.113.0/24", "drop")
    daemon.reload_event.set()
    with caplog.at_level("ERROR", logger="vpnreg.gateway"):
        daemon.housekeeping_once()
    assert daemon.gateway.home == (net("192.0.2.0/24"),)
    assert daemon.gateway.enforce is EnforceKind.NFTABLES and daemon.config.retention_days == 3
    assert f"configuration kept: {conf}: enforce: must be one of dry-run, nftables" in caplog.text
    daemon.process()
    daemon.shutdown()
    assert "1 flows, 1 VPN, 1 not-domestic" in daemon.summary()


def test_the_feed_size_limit_comes_from_the_configuration(
    tmp_path: Path, clock: FrozenClock
) -> None:
    signer = Signer(tmp_path)
    feed = tmp_path / "feed.json"
    entries = [entry(f"192.0.{i}.0/24", i + 1) for i in range(20)]
    document = signer.snapshot(entries, serial=1, created=clock.now())
    assert len(document) > 1024
    replace_file(feed, document)
    conf = tmp_path / "gw.toml"
    conf.write_text(
        f'feed = "{feed}"\ntrust = ["{signer.public_path}"]\nhome = ["198.51.100.0/24"]\n'
        f'enforce = "dry-run"\nstate_dir = "{tmp_path / "state"}"\nfeed_max_bytes = 1024\n'
    )
    daemon = GatewayDaemon(
        config_path=conf, overrides={"pcap": tmp_path / "x.pcap"}, clock=clock,
        flow_source=lambda _cfg: [], registry=CollectorRegistry(), err=io.StringIO(),
        backend_factory=lambda _kind: DryRunBackend(clock),
    )  # fmt: skip
    assert daemon.feed.max_bytes == 1024
    result = daemon.feed.poll()
    assert result.error_kind == "DocumentTooLarge" and daemon.feed.state is None


def test_replace_file_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "feed.json"
    replace_file(target, b"one")
    inode = target.stat().st_ino
    replace_file(target, b"two")
    assert target.read_bytes() == b"two" and target.stat().st_ino != inode


def test_a_stop_between_records_ends_the_processes_the_flow_source_forked(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """As NFStream's meters: a stop that lands while a record is decided closes the source's
    generator, which NFStream does not treat as a stop; the daemon ends the children itself."""
    context = multiprocessing.get_context("fork")
    meters: list[multiprocessing.process.BaseProcess] = []

    def source(_cfg: object) -> Iterator[FlowRecord]:
        meter = context.Process(target=time.sleep, args=(60,), daemon=False)
        meter.start()
        meters.append(meter)
        daemon.stop_event.set()  # the SIGTERM arrives while this record is being decided
        yield wg()
        yield wg(sport=40001)

    daemon = GatewayDaemon(
        config_path=None,
        overrides={"pcap": tmp_path / "x.pcap", "feed": "f", "trust": ("k",),
                   "home": ("198.51.100.0/24",), "enforce": "dry-run"},
        clock=clock, flow_source=source, backend_factory=lambda _kind: DryRunBackend(clock),
        feed_client=FakeFeed(),  # type: ignore[arg-type]
        registry=CollectorRegistry(), err=io.StringIO(),
    )  # fmt: skip
    try:
        daemon.process()
        assert daemon.gateway.totals.flows == 1
        assert not meters[0].is_alive()
    finally:
        for meter in meters:
            if meter.is_alive():
                meter.kill()
            meter.join()
