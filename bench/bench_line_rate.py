"""The agent at line rate (issue 18): TCP bulk through the lab's gateway while tunnels start.

For each mode, in the lab (tests/lab/netlab.py: namespaces A -- GW -- B over veth links, real
wireguard-go and OpenVPN peers): iperf3 (Debian) pushes as much TCP as the veth links carry from
A to B through GW for BENCH_LINE_RATE_SECONDS (default 30) while, every second, a new WireGuard
connection starts (A's listen port changes, a ping goes through the tunnel) and, every other
second, an OpenVPN client reconnects (UDP and TCP in turn). Modes:

- no agent: the link's throughput on its own;
- interface: `vpnreg gateway --interface` (today's capture: every packet to user space);
- conntrack: `vpnreg gateway --interface --capture conntrack` (ADR 0019).

Both agents enforce with nftables (A unregistered). Reported per mode: the iperf3 throughput
(received), the agent's CPU (the agent and its NFStream meters, from /proc through psutil, as a
share of one core over the run) and resident memory (peak of agent + meters), the share of the
tunnels started that were blocked, and each one's time to block: from its first packet on the
gateway (tcpdump on GW's A-side link, in-kernel filter on the tunnels' ports) to its drop element
in the agent's table (`nft monitor`, as bench_gateway's time to block). Every tunnel has its own
source port but tunnels of one kind share their block key (A, B, protocol, B's port): before each
start the benchmark empties the agent's sets, so each new tunnel is decided and blocked afresh
rather than dropped by its predecessor's element.
Environment: BENCH_LINE_RATE_SECONDS (30), BENCH_LINE_RATE_ROUNDS (2: the modes interleaved, the
best throughput of each mode reported). Needs root, the lab's programs, tcpdump and iperf3
(scripts/system-deps.sh --bench).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from tests.agent_gateway.feeds import Signer, entry, replace_file
from tests.console import VPNREG
from tests.lab.netlab import A_IP, B_IP, OVPN_PORT, WG_PORT, Lab, Tunnel, wait_until
from tests.lab.test_gateway_lab import HOME, new_wireguard_flow, restart_openvpn_client

from bench.bench_agent_soak import _openvpn_port
from bench.bench_gateway import ElementWatch
from bench.report import write_section

SECONDS = int(os.environ.get("BENCH_LINE_RATE_SECONDS", "30"))
ROUNDS = int(os.environ.get("BENCH_LINE_RATE_ROUNDS", "2"))
MODES = ("none", "interface", "conntrack")
#: Goals of issue 18 for the conntrack mode.
KEEP_SHARE, CPU_SHARE, BLOCK_MS = 0.95, 0.10, 100.0


@dataclass
class Started:
    kind: str  # wireguard | openvpn-udp | openvpn-tcp
    at: float  # wall clock, as tcpdump's and nft monitor's times
    port: int | None = None  # A's port of the tunnel's connection (None: not found)


@dataclass
class Result:
    """One mode's run."""

    mode: str
    gbit_s: float
    cpu_share: float | None = None
    rss_mib: float | None = None
    started: list[Started] = field(default_factory=list)
    #: Per tunnel blocked: (kind, first packet -> element, its part after the deciding packet).
    blocks: list[tuple[str, float, float | None]] = field(default_factory=list)
    #: Per tunnel blocked: (kind, ms from its first packet carrying payload to the element). A
    #: TCP tunnel's handshake carries none: nothing of the tunnel has crossed before it.
    from_payload: list[tuple[str, float]] = field(default_factory=list)
    #: Tunnels whose first packet was seen (the others' port could not be found: not counted).
    measured: int = 0


_PACKET = re.compile(r"^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+):")
_LENGTH = re.compile(r"length (\d+)")


def _first_packets(log: Path) -> list[tuple[float, int, int]]:
    """(time, A's port, payload bytes) of each packet tcpdump printed, A being the side in
    198.51.100.0/24 (tcpdump's last "length N": the TCP or UDP payload)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        m = _PACKET.match(line)
        if m:
            port = m.group(3) if m.group(2) == A_IP else m.group(5)
            lengths = _LENGTH.findall(line)
            found.append((float(m.group(1)), int(port), int(lengths[-1]) if lengths else 0))
    return found


def _times_to_block(
    started: list[Started],
    packets: list[tuple[float, int, int]],
    added: list[tuple[float, str]],
    verdicts: list[dict[str, object]],
) -> tuple[int, list[tuple[str, float, float | None]], list[tuple[str, float]]]:
    """(tunnels whose first packet was seen, per tunnel blocked: its kind, ms from its first
    packet to the first element added for its key after it and before the next tunnel of its
    kind started, and the part of that after its deciding packet: the verdict log's
    ms_to_verdict subtracted), and per tunnel blocked the ms from its first packet carrying
    payload."""
    measured, blocks, from_payload = 0, [], []
    for i, s in enumerate(started):
        until = next((n.at for n in started[i + 1 :] if n.kind == s.kind), float("inf"))
        first = next((t for t, port, _n in packets if port == s.port and t >= s.at - 0.01), None)
        if first is None:
            continue
        measured += 1
        server = WG_PORT if s.kind == "wireguard" else OVPN_PORT
        proto = "(6|tcp)" if s.kind == "openvpn-tcp" else "(17|udp)"
        key = re.compile(rf"\b{proto} \. {server}\b")
        stamp = next((t for t, line in added if first <= t < until and key.search(line)), None)
        if stamp is None:
            continue
        ms = (stamp - first) * 1000
        line = next(
            (
                x
                for x in verdicts
                if x["action"] == "block" and s.port in (x["src_port"], x["dst_port"])
            ),
            None,
        )
        after = None if line is None else ms - float(str(line["ms_to_verdict"]))
        blocks.append((s.kind, ms, after))
        payload = next((t for t, port, n in packets if port == s.port and t >= first and n), None)
        if payload is not None:
            from_payload.append((s.kind, (stamp - payload) * 1000))
    return measured, blocks, from_payload


def _verdicts(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def _rss_mib(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


def _tunnel_starts(
    lab: Lab, tunnels: dict[str, Tunnel], stop: threading.Event, *, fresh_keys: bool
) -> list[Started]:
    wg_ports = itertools.count(53000 + int(time.time()) % 1000 * 10)
    protos = itertools.cycle(("udp", "tcp"))
    started: list[Started] = []

    def empty_sets() -> None:
        if fresh_keys:  # each tunnel decided afresh, not dropped by its predecessor's element
            for name in ("v4_port", "v4_addr"):
                lab.gw_nft("flush", "set", "inet", "vpnreg", name)

    for second in itertools.count():
        if stop.is_set():
            break
        tick = time.monotonic()
        port = next(wg_ports)
        empty_sets()
        started.append(Started("wireguard", time.time(), port))
        new_wireguard_flow(lab, port)
        lab.ping(lab.ns_a, tunnels["wireguard"].b_inner, wait_s=0.3)
        if second % 2 == 0:
            proto = next(protos)
            empty_sets()
            start = Started(f"openvpn-{proto}", time.time())
            restart_openvpn_client(lab, proto)
            wait_until(lambda p=proto: _openvpn_port(lab, p) is not None, 2, 0.05)
            start.port = _openvpn_port(lab, proto)
            started.append(start)
        stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))
    return started


def run_mode(lab: Lab, tunnels: dict[str, Tunnel], work: Path, mode: str) -> Result:
    agent = None
    verdicts = work / f"verdicts-{mode}.jsonl"
    if mode != "none":
        signer = Signer(work)
        feed = work / f"feed-{mode}.json"
        created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        replace_file(feed, signer.snapshot([entry("192.0.2.0/24", 1)], serial=1, created=created))
        argv = [str(VPNREG), "gateway", "--interface", lab.if_gw_a, "--feed", str(feed),
                "--trust", str(signer.public_path), "--state-dir", str(work / f"state-{mode}"),
                "--enforce", "nftables", "--verdicts", str(verdicts)]  # fmt: skip
        for prefix in HOME:
            argv += ["--home", prefix]
        if mode == "conntrack":
            argv += ["--capture", "conntrack"]
        agent = lab.spawn(f"gateway-{mode}", lab.ns_gw, argv)
        if not wait_until(lambda: "started in" in agent.log.read_text(errors="replace"), 15):
            raise RuntimeError(f"the agent did not start: {agent.tail()}")
        time.sleep(1.0)
    server = lab.spawn(f"iperf3-{mode}", lab.ns_b, ["iperf3", "-s", "-1", "-B", B_IP])
    watch = ElementWatch(lab.netns_exec(lab.ns_gw)) if agent is not None else None
    tcpdump = lab.spawn(
        f"tcpdump-{mode}", lab.ns_gw,
        ["tcpdump", "--immediate-mode", "-tt", "-n", "-l", "-i", lab.if_gw_a,
         f"host {A_IP} and (udp port {WG_PORT} or port {OVPN_PORT})"],
    )  # fmt: skip
    if not wait_until(lambda: "listening on" in tcpdump.log.read_text(errors="replace"), 5):
        raise RuntimeError(f"tcpdump did not start: {tcpdump.tail()}")
    time.sleep(0.5)
    process = psutil.Process(agent.process.pid) if agent is not None else None
    cpu0, wall0 = (_cpu_seconds(process) if process else 0.0), time.monotonic()
    client = subprocess.Popen(
        [*lab.netns_exec(lab.ns_a), "iperf3", "-c", B_IP, "-t", str(SECONDS), "-J"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    stop = threading.Event()
    holder: list[list[Started]] = []
    starter = threading.Thread(
        target=lambda: holder.append(
            _tunnel_starts(lab, tunnels, stop, fresh_keys=agent is not None)
        )
    )
    starter.start()
    peak = 0.0
    while client.poll() is None:
        if process is not None:
            peak = max(peak, _rss_mib(process))
        time.sleep(1.0)
    stop.set()
    starter.join()
    out = client.communicate()[0]
    wall = time.monotonic() - wall0
    result = Result(mode, json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9)
    result.started = holder[0]
    if process is not None and agent is not None:
        result.cpu_share = (_cpu_seconds(process) - cpu0) / wall
        result.rss_mib = peak
        time.sleep(2.0)  # the last blocks
        assert watch is not None
        result.measured, result.blocks, result.from_payload = _times_to_block(
            result.started, _first_packets(tcpdump.log), list(watch.added), _verdicts(verdicts)
        )
        watch.close()
        agent.stop()
    tcpdump.stop()
    server.stop()
    # the next mode starts from working tunnels
    for proto in ("udp", "tcp"):
        if not lab.tunnel_works(tunnels[proto], within_s=3):
            restart_openvpn_client(lab, proto)
    return result


def _spread(values: list[float]) -> str:
    """median / p95 / max, nearest rank."""
    if not values:
        return "–"
    ms = sorted(values)
    p95 = ms[min(len(ms), math.ceil(0.95 * len(ms))) - 1]
    return f"{statistics.median(ms):.0f} / {p95:.0f} / {ms[-1]:.0f}"


def _row(runs: list[Result], base: float) -> str:
    """One mode over its rounds: best and every throughput, CPU and memory at their worst, the
    tunnels of all rounds pooled."""
    best = max(r.gbit_s for r in runs)
    every = ", ".join(f"{r.gbit_s:.1f}" for r in runs)
    cpu = [r.cpu_share for r in runs if r.cpu_share is not None]
    rss = [r.rss_mib for r in runs if r.rss_mib is not None]
    started = sum(len(r.started) for r in runs)
    measured = sum(r.measured for r in runs)
    blocked = [ms for r in runs for _k, ms, _a in r.blocks]
    processing = [a for r in runs for _k, _ms, a in r.blocks if a is not None]
    agent = runs[0].mode != "none"
    return (
        f"| {runs[0].mode} | {best:.2f} ({every}) | {best / base:.0%} | "
        f"{f'{max(cpu):.1%}' if cpu else '–'} | {f'{max(rss):.0f}' if rss else '–'} | "
        f"{started} | {f'{len(blocked)} of {measured}' if agent else '–'} | "
        f"{_spread(blocked) if agent else '–'} | {_spread(processing) if agent else '–'} |"
    )


def main() -> None:
    load = os.getloadavg()
    runs: dict[str, list[Result]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="vpnreg-bench-line-rate-") as tmp, Lab() as lab:
        lab.http_server()
        tunnels = {
            "wireguard": lab.wireguard_up(),
            "udp": lab.openvpn_up("udp"),
            "tcp": lab.openvpn_up("tcp"),
        }
        for tunnel in tunnels.values():
            if not lab.tunnel_works(tunnel):
                raise RuntimeError(f"{tunnel.name} does not come up")
        for round_ in range(ROUNDS):  # the modes interleaved: the machine's load drifts
            for mode in MODES:
                work = Path(tmp) / f"{mode}-{round_}"
                work.mkdir()
                result = run_mode(lab, tunnels, work, mode)
                runs[mode].append(result)
                print(f"round {round_ + 1}: {mode} {result.gbit_s:.2f} Gbit/s", flush=True)
    base = max(r.gbit_s for r in runs["none"])
    ct = runs["conntrack"]
    ct_best = max(r.gbit_s for r in ct)
    ct_cpu = max(r.cpu_share or 0.0 for r in ct)
    blocked = [ms for r in ct for _k, ms, _a in r.blocks]
    after = [a for r in ct for _k, _ms, a in r.blocks if a is not None]
    measured = sum(r.measured for r in ct)
    worst = max(blocked, default=float("inf"))
    worst_after = max(after, default=float("inf"))
    payload = [ms for r in ct for _k, ms in r.from_payload]
    worst_payload = max(payload, default=float("inf"))
    goals = (
        f"Goals for the conntrack mode: throughput at least {KEEP_SHARE:.0%} of no agent "
        f"(best runs): {ct_best / base:.0%} "
        f"({'met' if ct_best >= KEEP_SHARE * base else 'NOT met'}); agent CPU under "
        f"{CPU_SHARE:.0%} of a core: {ct_cpu:.1%} ({'met' if ct_cpu < CPU_SHARE else 'NOT met'}); "
        f"every tunnel blocked within {BLOCK_MS:.0f} ms: {len(blocked)} of {measured} blocked; "
        f"from its first packet the slowest took {worst:.0f} ms "
        f"({'met' if len(blocked) == measured and worst < BLOCK_MS else 'NOT met'}), from its "
        f"first packet carrying payload {worst_payload:.0f} ms "
        f"({'met' if len(payload) == measured and worst_payload < BLOCK_MS else 'NOT met'}), "
        f"from the packet that identified it {worst_after:.0f} ms "
        f"({'met' if len(after) == measured and worst_after < BLOCK_MS else 'NOT met'})."
    )
    kinds = sorted({k for mode in MODES for r in runs[mode] for k, _ms, _a in r.blocks})
    by_kind = "\n".join(
        [
            "| mode | tunnel | blocked | first packet to block ms (median / p95 / max) | "
            "first payload packet to block ms | deciding packet to block ms | first to "
            "deciding packet ms (the peers' own time) |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {mode} | {kind} | {len(rows)} | {_spread([ms for ms, _a in rows])} | "
                f"{_spread([ms for r in runs[mode] for k, ms in r.from_payload if k == kind])} | "
                f"{_spread([a for _ms, a in rows if a is not None])} | "
                f"{_spread([ms - a for ms, a in rows if a is not None])} |"
                for mode in MODES[1:]
                for kind in kinds
                for rows in [[(ms, a) for r in runs[mode] for k, ms, a in r.blocks if k == kind]]
            ),
        ]
    )
    table = "\n".join(
        [
            "| mode | Gbit/s best (each round) | of no agent | agent CPU (one core, worst) | "
            "agent RSS MiB (peak) | tunnels started | blocked (of first packets seen) | "
            "first packet to block ms (median / p95 / max) | of which after the deciding "
            "packet ms |",
            "|---|---|---|---|---|---|---|---|---|",
            *(_row(runs[mode], base) for mode in MODES),
        ]
    )
    print(table)
    print(by_kind)
    print(goals)
    body = "\n\n".join(
        [
            f"iperf3 TCP from A to B through the lab's gateway namespace (veth links) for "
            f"{SECONDS} s per mode and round ({ROUNDS} rounds, modes interleaved) while a "
            "WireGuard tunnel starts every second and an OpenVPN client reconnects every other "
            "second (UDP and TCP in turn); the agent enforces with nftables, A unregistered. CPU "
            "and memory: the agent and its NFStream meters. Time to block: from the tunnel's "
            "first packet on the gateway (tcpdump) to its drop element (`nft monitor`), and from "
            "its first packet carrying payload (a TCP handshake carries none); the "
            "agent's sets are emptied before each tunnel starts, so each one is decided afresh; "
            "the last column leaves out the peers' own time to send the deciding packet (the "
            "verdict log's `ms_to_verdict`). Run: `python -m bench.all bench_line_rate` (root, "
            "the lab's programs, tcpdump, iperf3). "
            f"Load average at the start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on a "
            "2-core machine shared with other work; iperf3, the VPN peers, tcpdump and the "
            "agent share those cores, so the throughput is the machine's, not a NIC's, and "
            "moves by tens of percent from run to run with the other load.",
            table,
            "By kind of tunnel (both rounds):",
            by_kind,
            goals,
        ]
    )
    write_section("line_rate", f"Line rate: the agent's cost per flow ({SECONDS} s per mode)", body)


if __name__ == "__main__":
    main()
