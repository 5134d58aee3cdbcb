"""The gateway agent: throughput and peak memory against raw NFStream, and time to block.

Throughput: a pcap of at least a million packets is built in a temporary directory from the nDPI
corpus (`bench.pcapmerge`: copies laid out in time so their flows never merge), then read in the
same run by raw NFStream (no plugin, the agent's meter settings) and by the real
`vpnreg gateway --pcap ... --enforce dry-run`. Every run is a fresh process started by a fresh
wrapper process, which measures the wall time, the largest RSS of any process of the tree
(`getrusage(RUSAGE_CHILDREN)`) and the peak of the tree's summed PSS (sampled every 20 ms, so
pages shared between the agent and its forked meter count once); best of three per side.

Time to block: in a lab of network namespaces (tests.lab.netlab, needs root) the agent runs live
on the gateway's interface with nftables and a feed that does not register the client; a new
WireGuard (and OpenVPN UDP) tunnel starts and the time goes from its first packet (tcpdump's
kernel time stamp on the gateway) to the drop element appearing (`nft monitor` in the gateway).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.pcapmerge import read_capture, write_repeated
from bench.report import write_section
from vpnreg.agent.flows import ACTIVE_TIMEOUT_S, IDLE_TIMEOUT_S
from vpnreg.core.feed import AllowlistEntry, EnforcementMode, Mode, dump_document, sign_snapshot

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "ndpi"
VPNREG = Path(sys.executable).with_name("vpnreg")
MIN_PACKETS = 1_000_000
RUNS = 3
LAB_REPEATS = 5
#: Gap between laid-out captures: longer than the meter's idle timeout, so flows never merge.
GAP_S = IDLE_TIMEOUT_S + 60
SAMPLE_S = 0.02
#: Home prefixes for the throughput run: the corpus's clients are mostly in private space.
HOME = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")

#: NFStream with the agent's meter settings (agent/flows.py). `UDPS`: None for the raw side; a
#: plugin that does nothing for the side that shows what NFStream's plugin mode costs.
NFSTREAM_CODE = textwrap.dedent(
    f"""
    import json, sys
    from nfstream import NFPlugin, NFStreamer
    streamer = NFStreamer(
        source=sys.argv[1], bpf_filter=None, n_meters=1, idle_timeout={IDLE_TIMEOUT_S},
        active_timeout={ACTIVE_TIMEOUT_S}, statistical_analysis=False, udps=UDPS,
    )
    flows = packets = 0
    for flow in streamer:
        flows += 1
        packets += flow.bidirectional_packets
    print(json.dumps({{"flows": flows, "packets": packets}}))
    """
)
#: The agent's flow source alone (meter with the agent's plugin), without the pipeline.
FLOWS_CODE = textwrap.dedent(
    """
    import json, sys
    from vpnreg.agent.flows import iter_flows
    lean = sys.argv[2] == "lean"
    records = sum(1 for _ in iter_flows(sys.argv[1], include_continuations=True, lean=lean))
    print(json.dumps({"records": records}))
    """
)


# -- measuring one process tree ------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    wall_s: float
    max_rss_kib: int  # the largest RSS any one process of the tree reached
    peak_pss_kib: int  # the largest sum of PSS over the tree at one sample
    stdout: str
    stderr: str


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
    return pids


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure_child() -> None:
    """Entry point of the wrapper process: run argv, print a Run as JSON on the last line."""
    argv = sys.argv[1:]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.append(process.stdout.read())),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.append(process.stderr.read())),  # type: ignore[union-attr]
    ]
    for r in readers:
        r.start()
    while process.poll() is None:
        peak = max(peak, sum(_pss_kib(p) for p in _tree(process.pid)))
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - started
    for r in readers:
        r.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = Run(wall, usage.ru_maxrss, peak, "".join(out), "".join(err))
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {process.returncode}: {run.stderr[-2000:]}")
    print(json.dumps(dataclasses.asdict(run)))


def measure(argv: Sequence[str]) -> Run:
    """Run argv under a fresh wrapper process (so RUSAGE_CHILDREN covers this tree only)."""
    wrapper = [sys.executable, "-c", "from bench.bench_gateway import measure_child as m; m()"]
    done = subprocess.run(
        [*wrapper, *argv], capture_output=True, text=True, check=False, cwd=ROOT, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement of {argv[:3]} failed: {done.stderr[-3000:]}")
    return Run(**json.loads(done.stdout.strip().splitlines()[-1]))


# -- a signed snapshot ----------------------------------------------------------------------------


def write_feed(directory: Path, entries: Sequence[AllowlistEntry]) -> tuple[Path, Path]:
    """A key pair and a signed snapshot of `entries`; returns (feed file, public key file)."""
    key = Ed25519PrivateKey.generate()
    public = directory / "feed.pub"
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    public.write_bytes(pem)
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    document = sign_snapshot(
        session_id=secrets.token_hex(16),
        serial=1,
        entries=list(entries),
        mode=EnforcementMode(Mode.ENFORCE),
        created=created,
        expires=created + dt.timedelta(days=1),
        private_key=key,
    )
    feed = directory / "feed.json"
    feed.write_bytes(dump_document(document))
    return feed, public


def doc_entry(prefix: str, registration_id: int) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=ipaddress.ip_network(prefix),
        peers=(),
        registration_id=registration_id,
        # a year from now, whole seconds (entry v2): the bench's gateway clock is real time
        valid_until=dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=365),
    )


# -- throughput -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    name: str
    runs: tuple[Run, ...]

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.wall_s)

    @property
    def pss_kib(self) -> int:
        return min(r.peak_pss_kib for r in self.runs)

    @property
    def rss_kib(self) -> int:
        return min(r.max_rss_kib for r in self.runs)


@dataclass(frozen=True)
class Throughput:
    packets: int
    copies: int
    captures: int
    size: int
    sides: tuple[Side, ...]  # raw NFStream first, the agent last
    raw_flows: int
    raw_packets: int
    agent_summary: str

    @property
    def raw(self) -> Side:
        return self.sides[0]

    @property
    def agent(self) -> Side:
        return self.sides[-1]


def throughput(work: Path) -> Throughput:
    captures = [
        read_capture(p) for p in sorted(CORPUS.iterdir()) if p.suffix in (".pcap", ".pcapng")
    ]
    big = work / "corpus-x.pcap"
    merged = write_repeated(big, captures, min_packets=MIN_PACKETS, gap_s=GAP_S)
    size_mib = big.stat().st_size / 2**20
    print(f"built {big.name}: {merged.packets} packets, {merged.copies} copies of "
          f"{len(captures)} captures, {size_mib:.0f} MiB", flush=True)  # fmt: skip
    feed, public = write_feed(work, [doc_entry("192.0.2.0/24", 1)])
    agent_argv = [str(VPNREG), "gateway", "--pcap", str(big), "--feed", str(feed),
                  "--trust", str(public), "--state-dir", str(work / "state"),
                  "--enforce", "dry-run", "--verdicts", str(work / "verdicts.jsonl")]  # fmt: skip
    for prefix in HOME:
        agent_argv += ["--home", prefix]
    python = sys.executable
    plans = [
        ("raw NFStream", [python, "-c", NFSTREAM_CODE.replace("UDPS", "None"), str(big)]),
        ("NFStream + no-op plugin",
         [python, "-c", NFSTREAM_CODE.replace("UDPS", "[NFPlugin()]"), str(big)]),
        ("agent's flow source, plain plugin mode", [python, "-c", FLOWS_CODE, str(big), "plain"]),
        ("agent's flow source only", [python, "-c", FLOWS_CODE, str(big), "lean"]),
        ("vpnreg gateway", agent_argv),
    ]  # fmt: skip
    runs: dict[str, list[Run]] = {name: [] for name, _ in plans}
    for i in range(RUNS):  # interleaved, so a slow spell of the machine hits every side
        for name, argv in plans:
            with contextlib.suppress(FileNotFoundError):
                (work / "verdicts.jsonl").unlink()
            run = measure(argv)
            runs[name].append(run)
            print(f"  run {i + 1} {name}: {run.wall_s:.1f} s, {merged.packets / run.wall_s:,.0f} "
                  f"pkt/s, max RSS {run.max_rss_kib / 1024:.0f} MiB, "
                  f"peak PSS {run.peak_pss_kib / 1024:.0f} MiB", flush=True)  # fmt: skip
    raw_out = json.loads(runs["raw NFStream"][-1].stdout.strip().splitlines()[-1])
    summary = runs["vpnreg gateway"][-1].stderr.strip().splitlines()[-1]
    return Throughput(
        packets=merged.packets,
        copies=merged.copies,
        captures=len(captures),
        size=big.stat().st_size,
        sides=tuple(Side(name, tuple(runs[name])) for name, _ in plans),
        raw_flows=raw_out["flows"],
        raw_packets=raw_out["packets"],
        agent_summary=re.sub(r": \S*/", ": ", summary),
    )


def throughput_markdown(t: Throughput) -> str:
    raw, agent = t.raw, t.agent
    pps_raw = t.packets / raw.best.wall_s
    pps_agent = t.packets / agent.best.wall_s
    speed = pps_agent / pps_raw
    pss = agent.pss_kib / raw.pss_kib
    rss = agent.rss_kib / raw.rss_kib
    flows = re.search(r"(\d+) flows", t.agent_summary)
    by_name = {side.name: side for side in t.sides}
    noop = raw.best.wall_s / by_name["NFStream + no-op plugin"].best.wall_s
    source = raw.best.wall_s / by_name["agent's flow source only"].best.wall_s
    plain = raw.best.wall_s / by_name["agent's flow source, plain plugin mode"].best.wall_s
    lines = [
        "### Throughput and memory (capture file)",
        "",
        f"File: the {t.captures} captures of the nDPI corpus (non-Ethernet link types converted "
        f"to Ethernet by `bench/pcapmerge.py`), repeated {t.copies} times: **{t.packets:,} "
        f"packets**, {t.size / 2**20:.0f} MiB, built in a temporary directory and deleted. Each "
        f"capture starts {GAP_S} s after the previous one ended (jumps inside a capture longer "
        f"than that are shortened to it), more than the {IDLE_TIMEOUT_S} s idle timeout, so no "
        "flow merges across copies even though they repeat addresses and ports. Raw NFStream "
        f"sees {t.raw_packets:,} packets in {t.raw_flows:,} flows (the rest are not IP).",
        "",
        "Every side: one meter, idle timeout "
        f"{IDLE_TIMEOUT_S} s, active timeout {ACTIVE_TIMEOUT_S} s, no statistical analysis, "
        "default n_dissections, iterating every flow. Raw: `NFStreamer(udps=None)`. No-op plugin: "
        "`udps=[NFPlugin()]`, which puts NFStream in its plugin mode (every packet copied to "
        "Python and every flow's fields synchronised per packet). Flow source only: "
        "`agent.flows.iter_flows` (the agent's plugin with early hand-over, on the lean meter "
        "flow), no pipeline; plain plugin mode: the same with `lean=False`. Agent: "
        "`vpnreg gateway --pcap FILE --feed SNAPSHOT --trust PUB --home 10.0.0.0/8 --home "
        "172.16.0.0/12 --home 192.168.0.0/16 --enforce dry-run --verdicts FILE` (whole process: "
        "start-up, capture check, feed verification, meter with the plugin, classification, "
        f"policy, verdict log). Best of {RUNS} interleaved runs each, every run a fresh process "
        "under a fresh wrapper; peak PSS is the largest sum over the process tree (the agent or "
        "script and its forked meter) sampled every 20 ms, max RSS the largest single process "
        "(`getrusage(RUSAGE_CHILDREN)`).",
        "",
        "| side | wall time | packets/s | vs raw | peak PSS (tree) | vs raw | max RSS (one "
        "process) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {side.name} | {side.best.wall_s:.1f} s | {t.packets / side.best.wall_s:,.0f} | "
            f"{raw.best.wall_s / side.best.wall_s:.2f}x | {side.pss_kib / 1024:.0f} MiB | "
            f"{side.pss_kib / raw.pss_kib:.2f}x | {side.rss_kib / 1024:.0f} MiB |"
            for side in t.sides
        ),
        "",
        f"Agent summary: `{t.agent_summary}`"
        + (
            f" ({flows.group(1)} flows, as many as raw NFStream's: the continuation of a flow "
            "handed over early is a further record that only keeps its block refreshed)."
            if flows
            else "."
        ),
        "",
        f"Targets: packets/s >= 0.5x raw: **{'met' if speed >= 0.5 else 'missed'}** "
        f"({speed:.2f}x); memory within 1.5x: **{'met' if pss <= 1.5 else 'missed'}** "
        f"({pss:.2f}x peak PSS, {rss:.2f}x max RSS).",
        "",
        "Where the time goes (the rows above, and py-spy on the agent): the meter process is the "
        "bottleneck and the consumer mostly waits for it. NFStream's plugin mode alone costs "
        f"{noop:.2f}x raw's packets/s: for every packet of every flow it builds a Python packet "
        "(with a copy of its bytes) and re-reads the flow's C fields, decoding seven strings "
        "until detection ends. With that mode as it is, the agent's flow source ran at "
        f"{plain:.2f}x. The agent's meters use `vpnreg.agent.leanflow` instead (the flow source "
        f"row, {source:.2f}x): NFStream's flow class with a per-packet update that copies only "
        "the packet count and makes a Python packet only for the plugin's first "
        "`INSPECT_PACKETS` packets of a flow, and for the rest of a connection (its continuation "
        "after the early hand-over) does NFStream's C update alone; expiry is NFStream's own, so "
        "the records are the same (`tests/agent/test_leanflow.py` compares both modes on every "
        "corpus capture). The whole agent runs at the flow source's speed, within the noise of "
        "three runs, since the consumer works in parallel with the meter on the second core.",
    ]
    return "\n".join(lines)


# -- time to block (lab) --------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One new tunnel: from its first packet on the gateway to its drop element in nftables."""

    to_element_ms: float  # first packet (tcpdump's time stamp) -> element seen by `nft monitor`
    detection_ms: int  # first packet -> the packet that completed detection (verdict log)
    packets: int  # packets of the flow up to that one (verdict log)

    @property
    def processing_ms(self) -> float:
        return self.to_element_ms - self.detection_ms


class ElementWatch:
    """`nft monitor` in the gateway namespace; notes the wall time of each added element."""

    def __init__(self, netns: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [*netns, "stdbuf", "-oL", "nft", "monitor"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )  # fmt: skip
        self.added: list[tuple[float, str]] = []
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # let it subscribe before anything is started

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            stamp = time.time()
            self.lines.append(line.strip())
            if line.startswith("add element inet vpnreg"):
                self.added.append((stamp, line))

    def first(self, port: int) -> float | None:
        """When the first element naming `port` (the block key's remote port) was added."""
        pattern = re.compile(rf"\b{port}\b")
        return next((stamp for stamp, line in list(self.added) if pattern.search(line)), None)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=5)
        self._thread.join(timeout=2)


def _first_packet_time(log: Path) -> float | None:
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            m = re.match(r"(\d+\.\d+) IP", line)
            if m:
                return float(m.group(1))
    return None


class LabRun:
    """The lab's namespaces and tunnels, and one fresh enforcing agent per measurement."""

    def __init__(self, lab: Any, work: Path) -> None:
        from tests.lab.netlab import wait_until

        self.lab, self.wait_until = lab, wait_until
        self.work = work / "lab"  # its own key, feed and state directory
        self.work.mkdir()
        self.feed, self.public = write_feed(self.work, [doc_entry("192.0.2.0/24", 1)])
        self.round = 0

    def agent(self) -> Any:
        self.round += 1
        verdicts = self.work / f"verdicts-{self.round}.jsonl"
        lab = self.lab
        argv = [str(VPNREG), "gateway", "--interface", lab.if_gw_a, "--feed", str(self.feed),
                "--trust", str(self.public), "--state-dir", str(self.work / "state"),
                "--enforce", "nftables", "--verdicts", str(verdicts),
                "--home", "198.51.100.0/24"]  # fmt: skip
        daemon = lab.spawn(f"gateway-{self.round}", lab.ns_gw, argv)
        if not self.wait_until(lambda: "started in" in daemon.log.read_text(errors="replace"), 15):
            raise RuntimeError(f"agent did not start: {daemon.tail()}")
        time.sleep(1.0)  # NFStream opens the capture after the back end has started
        return daemon, verdicts

    def measure(
        self, name: str, port: int, key_port: int, start: Callable[[], None], *, busy: bool
    ) -> Block:
        """Start an agent, then the tunnel (`start`) whose flow has `port` on A's or B's side
        and whose block key names `key_port` (B's port); time its block from the flow's first
        packet, whichever way it went. `busy`: with a flood ping between A and B meanwhile."""
        from tests.lab.netlab import A_IP

        bpf = f"udp and host {A_IP} and port {port}"
        from tests.lab.netlab import B_IP

        lab = self.lab
        daemon, verdicts = self.agent()
        if busy:
            flood = lab.spawn(
                f"flood-{self.round}", lab.ns_a, ["ping", "-q", "-i", "0.001", "-s", "1000", B_IP]
            )
            time.sleep(0.5)
        watch = ElementWatch(lab.netns_exec(lab.ns_gw))
        tcpdump = lab.spawn(
            f"tcpdump-{self.round}", lab.ns_gw,
            ["tcpdump", "--immediate-mode", "-tt", "-n", "-l", "-i", lab.if_gw_a, "-c", "1", bpf],
        )  # fmt: skip
        try:
            if not self.wait_until(lambda: "listening on" in tcpdump.log.read_text(), 5):
                raise RuntimeError(f"tcpdump did not start: {tcpdump.tail()}")
            start()

            def verdict() -> dict[str, Any] | None:
                if not verdicts.exists():
                    return None
                lines = [json.loads(text) for text in verdicts.read_text().splitlines()]
                return next((v for v in lines if port in (v["src_port"], v["dst_port"])), None)

            ok = self.wait_until(
                lambda: verdict() is not None and watch.first(key_port) is not None, 15, 0.01
            )
            # tcpdump prints when its own capture buffer hands the packet over: wait for it
            self.wait_until(lambda: _first_packet_time(tcpdump.log) is not None, 3, 0.01)
            first = _first_packet_time(tcpdump.log)
            added = watch.first(key_port)
            line = verdict()
            if not ok or first is None or added is None or line is None:
                seen = verdicts.read_text() if verdicts.exists() else ""
                raise RuntimeError(
                    f"{name}: no block seen (first packet {first}, monitor {watch.lines[-3:]}, "
                    f"agent: {daemon.tail()}, verdicts {seen[:600]}, tcpdump {tcpdump.tail()})"
                )
            if line["action"] != "block":
                raise RuntimeError(f"{name}: verdict {line}")
            return Block(
                to_element_ms=(added - first) * 1000,
                detection_ms=int(line["ms_to_verdict"]),
                packets=int(line["packets_to_verdict"]),
            )
        finally:
            if busy:
                flood.stop()
            watch.close()
            tcpdump.stop()
            daemon.stop()  # SIGTERM: the agent removes its table (fail-open)


def _wireguard_peer(lab: Any) -> str:
    out = lab.inside(lab.ns_a, "wg", "show", f"wga{lab.tag}", "peers").stdout.split()
    if len(out) != 1:
        raise RuntimeError(f"expected one WireGuard peer on A, got {out}")
    return str(out[0])


def _respawn(lab: Any, name: str, ns: str) -> Any:
    old = next(d for d in reversed(lab.daemons) if d.name == name)
    old.stop()
    args = [str(a) for a in old.process.args][len(lab.netns_exec(ns)) :]
    return lab.spawn(name, ns, args)


#: The two link conditions: quiet, and ~2000 packets/s of 1 KB pings between A and B.
CONDITIONS = (("quiet link", False), ("busy link", True))

LabResults = dict[tuple[str, str], list[Block]]


def lab_latency(work: Path) -> LabResults | str:
    """Time to block per tunnel kind and link condition, or why the lab could not run."""
    from tests.lab.netlab import B_IP, WG_PORT, Lab, missing_requirements

    missing = missing_requirements() + [p for p in ("tcpdump", "stdbuf") if not shutil.which(p)]
    if missing:
        return f"not measured: the lab needs {', '.join(missing)}"
    lab = Lab()
    results: LabResults = {}
    try:
        lab.up()
        lab.wireguard_up()
        lab.openvpn_up("udp")
        run = LabRun(lab, work)
        wg_if, peer = f"wga{lab.tag}", _wireguard_peer(lab)
        ports = iter(range(52000, 53000))

        def wireguard() -> tuple[int, Callable[[], None]]:
            # no tunnel traffic while the agent starts: it would recognise the old flow mid-stream
            lab.inside(lab.ns_a, "wg", "set", wg_if, "peer", peer, "remove")
            port = next(ports)

            def start() -> None:
                # a fresh handshake from a new source port; the keepalive starts it at once
                lab.inside(lab.ns_a, "wg", "set", wg_if, "listen-port", str(port), "peer", peer,
                           "endpoint", f"{B_IP}:{WG_PORT}", "allowed-ips", "10.99.0.2/32",
                           "persistent-keepalive", "25")  # fmt: skip

            return port, start

        def openvpn() -> tuple[int, Callable[[], None]]:
            for name in ("ovpn-udp-a", "ovpn-udp-b"):
                next(d for d in reversed(lab.daemons) if d.name == name).stop()

            def start() -> None:
                # point-to-point UDP mode talks only to the first peer port: restart both ends
                server = _respawn(lab, "ovpn-udp-b", lab.ns_b)
                ready = lambda: "UDPv4 link local" in server.log.read_text(errors="replace")  # noqa: E731
                if not run.wait_until(ready, 5):
                    raise RuntimeError(f"openvpn server did not start: {server.tail()}")
                _respawn(lab, "ovpn-udp-a", lab.ns_a)

            return 1194, start

        # One tunnel at a time: the agent recognises a running tunnel mid-stream too (OpenVPN's
        # data channel, WireGuard's transport messages), and its block would land in the other
        # tunnel's measurement. The OpenVPN rows restart their daemons; the WireGuard peer goes
        # after its rows.
        for name in ("ovpn-udp-a", "ovpn-udp-b"):
            next(d for d in reversed(lab.daemons) if d.name == name).stop()
        for tunnel, prepare in (("WireGuard", wireguard), ("OpenVPN (UDP)", openvpn)):
            if tunnel != "WireGuard":
                lab.inside(lab.ns_a, "wg", "set", wg_if, "peer", peer, "remove")
            for condition, busy in CONDITIONS:
                blocks = results.setdefault((tunnel, condition), [])
                for i in range(LAB_REPEATS):
                    port, start = prepare()
                    key_port = WG_PORT if tunnel == "WireGuard" else 1194
                    block = run.measure(tunnel, port, key_port, start, busy=busy)
                    blocks.append(block)
                    print(f"  {tunnel}, {condition}, {i + 1}: {block.to_element_ms:.1f} ms "
                          f"({block.packets} packets, detection {block.detection_ms} ms)",
                          flush=True)  # fmt: skip
    finally:
        problems = lab.close()
        if problems:
            print(f"lab teardown: {problems}", flush=True)
    return results


def latency_markdown(results: LabResults | str) -> str:
    lines = ["### Time from a new tunnel's first packet to its drop rule (lab)", ""]
    if isinstance(results, str):
        return "\n".join([*lines, results])
    lines += [
        "Lab of network namespaces A -- GW -- B (`tests/lab/netlab.py`, veth links, no added "
        "delay); the real agent runs live on GW's interface toward A (`--interface IF --enforce "
        "nftables`, one NFStream meter) with a signed snapshot that does not register A. For each "
        f"of {LAB_REPEATS} runs per row a fresh agent starts (empty table), then a new tunnel: "
        "WireGuard from a new source port with a fresh handshake (wireguard-go); OpenVPN over "
        "UDP by restarting its server and client (TLS mode). Only the tunnel measured runs (the "
        "agent also blocks a running tunnel mid-stream, which would land in the other's row). "
        "Measured from the first packet of the tunnel's flow, either way (tcpdump's kernel time "
        "stamp on GW), to its drop element appearing in `table inet vpnreg` (`nft monitor` on "
        "GW), with the verdict taken from the log line of that flow. Detection: first packet "
        "to the packet that completed detection (the verdict log's `ms_to_verdict`, capture "
        "time stamps); the rest is capture buffering, the meter's hand-over, classification, "
        "decision and `nft -f -`. "
        "Busy link: `ping -i 0.001 -s 1000` from A to B meanwhile (about 2,000 packets/s "
        "through the captured interface).",
        "",
        "| tunnel | link | runs | first packet -> drop element: median | max | "
        "detection (median) | packets to verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (tunnel, condition), blocks in results.items():
        total = [b.to_element_ms for b in blocks]
        packets = sorted({b.packets for b in blocks})
        lines.append(
            f"| {tunnel} | {condition} | {len(blocks)} | **{statistics.median(total):.0f} ms** | "
            f"{max(total):.0f} ms | {statistics.median([b.detection_ms for b in blocks]):.0f} ms "
            f"| {', '.join(map(str, packets))} |"
        )
    lines += [
        "",
        "Where the time goes: both tunnels are decided on their second packet, the peer's "
        "answer, within a millisecond of the first; the rest is the meter's hand-over, the "
        "decision and `nft -f -`. The agent turns on libpcap's immediate mode for live captures "
        "(`vpnreg.agent.livecapture`): NFStream's default, a 1000 ms buffer timeout, had held "
        "packets about 700 ms on a quiet link (742 ms WireGuard, 677 ms OpenVPN before the "
        "change, 60-75 ms on a busy link).",
    ]
    return "\n".join(lines)


def main() -> None:
    only = os.environ.get("BENCH_GATEWAY_ONLY", "")
    with tempfile.TemporaryDirectory(prefix="bench-gateway.") as tmp:
        work = Path(tmp)
        parts = []
        if only in ("", "throughput"):
            parts.append(throughput_markdown(throughput(work)))
        if only in ("", "latency"):
            parts.append(latency_markdown(lab_latency(work)))
    body = "\n\n".join(parts)
    print(body)
    if not only:
        write_section("gateway", "Gateway agent: throughput, memory, time to block", body)


if __name__ == "__main__":
    main()
