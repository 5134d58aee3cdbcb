"""Agent soak: `vpnreg gateway` on a live interface in the lab (tests/lab/netlab.py: namespaces
A -- GW -- B, real wireguard-go and OpenVPN peers) for 10 minutes of mixed traffic: its memory
over the run (target: no growth beyond NFStream's own) and its verdicts against the flows
started (target: no missed verdict, no verdict for a non-VPN flow).

The agent runs in GW on the A side (`--enforce dry-run`, A unregistered: every VPN flow gets
the verdict `unregistered` with the action `report`, and the tunnels keep working, so the run
can go on making flows through them). Each round of traffic, about every 2 s:

- VPN: a new WireGuard flow (A's listen port changes to a port never used before, then a ping
  through the tunnel); every third round an OpenVPN client reconnects (UDP and TCP in turn, a new
  source port each time, found with `ss` in A) and pings through its tunnel;
- plain: a ping from A to B, an HTTP GET from A to B's web server, a UDP datagram from A to B.

A VPN flow counts as decided when a verdict line names its two endpoints. Every verdict line must
name a VPN server port of B (WireGuard 51820, OpenVPN 1194): a line naming anything else is a
verdict for plain traffic. The resident memory of the agent and of its NFStream meter processes
(forked children) is sampled every 5 s; growth is measured from the end of the first sixth of the
run to the end. Environment: BENCH_AGENT_SOAK_SECONDS (default 600; 120 for a short run). Needs
root and the lab's programs, as the lab tests do.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
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

from bench.report import write_section

SECONDS = int(os.environ.get("BENCH_AGENT_SOAK_SECONDS", "600"))
SAMPLE_EVERY_S = 5.0
ROUND_S = 2.0
OPENVPN_EVERY = 3
#: Growth after the warm-up below this share of the warm figure counts as flat.
FLAT_SHARE = 0.10
#: Where B listens for VPN clients: a verdict line naming none of these decided plain traffic.
VPN_SERVER_PORTS = {WG_PORT, OVPN_PORT}
PLAIN_UDP_PORT = 9999
#: Seconds the verdicts of the last flows may take to appear after the traffic stops.
SETTLE_S = 10.0

#: A flow as the verdict log names it, without direction: protocol and its two endpoints.
FlowKey = tuple[int, frozenset[tuple[str, int]]]


def flow_key(protocol: int, a: tuple[str, int], b: tuple[str, int]) -> FlowKey:
    return protocol, frozenset((a, b))


@dataclass
class Tally:
    """The flows started, by kind, and the plain traffic sent."""

    vpn: dict[FlowKey, str] = field(default_factory=dict)
    plain: dict[str, int] = field(default_factory=lambda: {"ping": 0, "http": 0, "udp": 0})
    plain_failed: int = 0
    openvpn_failed: int = 0


def _rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 2**20


def _sample(
    pid: int, samples: list[tuple[float, float, float, int]], stop: threading.Event
) -> None:
    """(seconds, agent MiB, meters MiB, meter count) every SAMPLE_EVERY_S."""
    agent = psutil.Process(pid)
    started = time.monotonic()
    while not stop.wait(SAMPLE_EVERY_S):
        try:
            children = agent.children(recursive=True)
            meters = sum(_rss_mib(c) for c in children)
            samples.append((time.monotonic() - started, _rss_mib(agent), meters, len(children)))
        except psutil.NoSuchProcess:
            return


def _openvpn_port(lab: Lab, proto: str) -> int | None:
    """A's source port of its OpenVPN connection to B (udp or tcp): the port of the client's
    socket, found by its pid with `ss` in A (the UDP client's socket is not connected)."""
    client = next(d for d in reversed(lab.daemons) if d.name == f"ovpn-{proto}-a")
    flag = "-Hunap" if proto == "udp" else "-Htnap"
    out = lab.inside(lab.ns_a, "ss", flag).stdout
    for line in out.splitlines():
        columns = line.split()
        if f"pid={client.process.pid}," in line and len(columns) >= 5:
            return int(columns[3].rsplit(":", 1)[1])
    return None


def _plain_udp(lab: Lab, port: int) -> None:
    python = shutil.which("python3") or "python3"
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('', int(sys.argv[2])))\n"
        "s.sendto(b'plain', (sys.argv[1], int(sys.argv[3])))\n"
    )
    lab.inside(lab.ns_a, python, "-c", code, B_IP, str(port), str(PLAIN_UDP_PORT))


def _publish(feed: Path, signer: Signer) -> None:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    replace_file(feed, signer.snapshot([entry("192.0.2.0/24", 1)], serial=1, created=created))


def _verdicts(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _line_key(line: dict[str, object]) -> FlowKey:
    return flow_key(
        int(str(line["ip_protocol"])),
        (str(line["src_ip"]), int(str(line["src_port"]))),
        (str(line["dst_ip"]), int(str(line["dst_port"]))),
    )


def _traffic(lab: Lab, tunnels: dict[str, Tunnel], until: float, tally: Tally) -> int:
    """Rounds of mixed traffic until `until` (monotonic); returns the rounds made."""
    wg_ports = itertools.count(52000)
    plain_ports = itertools.count(0)
    protos = itertools.cycle(("udp", "tcp"))
    rounds = 0
    while time.monotonic() < until:
        started = time.monotonic()
        port = next(wg_ports)
        new_wireguard_flow(lab, port)
        tally.vpn[flow_key(17, (A_IP, port), (B_IP, WG_PORT))] = "wireguard"
        lab.ping(lab.ns_a, tunnels["wireguard"].b_inner, wait_s=0.5)
        if rounds % OPENVPN_EVERY == 0:
            proto = next(protos)
            restart_openvpn_client(lab, proto)
            if lab.tunnel_works(tunnels[proto], within_s=15):
                ovpn_port = _openvpn_port(lab, proto)
                if ovpn_port is not None:
                    number = 17 if proto == "udp" else 6
                    key = flow_key(number, (A_IP, ovpn_port), (B_IP, OVPN_PORT))
                    tally.vpn[key] = f"openvpn-{proto}"
                else:
                    tally.openvpn_failed += 1
            else:
                tally.openvpn_failed += 1
        for kind, works in (
            ("ping", lambda: lab.ping(lab.ns_a, B_IP)),
            ("http", lab.http_works),
            ("udp", lambda: _plain_udp(lab, 40000 + next(plain_ports) % 20000) is None),
        ):
            tally.plain[kind] += 1
            if not works():
                tally.plain_failed += 1
        rounds += 1
        time.sleep(max(0.0, ROUND_S - (time.monotonic() - started)))
    return rounds


def main() -> None:
    samples: list[tuple[float, float, float, int]] = []
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="vpnreg-bench-agent-soak-") as tmp, Lab() as lab:
        lab.http_server()
        tunnels = {
            "wireguard": lab.wireguard_up(),
            "udp": lab.openvpn_up("udp"),
            "tcp": lab.openvpn_up("tcp"),
        }
        for tunnel in tunnels.values():
            if not lab.tunnel_works(tunnel):
                raise RuntimeError(f"{tunnel.name} does not come up")
        signer = Signer(Path(tmp))
        feed, verdicts = Path(tmp) / "feed.json", Path(tmp) / "verdicts.jsonl"
        _publish(feed, signer)
        argv = [str(VPNREG), "gateway", "--interface", lab.if_gw_a, "--feed", str(feed),
                "--trust", str(signer.public_path), "--state-dir", str(Path(tmp) / "state"),
                "--enforce", "dry-run", "--verdicts", str(verdicts)]  # fmt: skip
        for prefix in HOME:
            argv += ["--home", prefix]
        agent = lab.spawn("gateway-soak", lab.ns_gw, argv)
        log = lambda: agent.log.read_text(errors="replace")  # noqa: E731
        if not wait_until(lambda: "started in" in log(), 15):
            raise RuntimeError(f"the agent did not start: {log()}")
        time.sleep(1.0)  # NFStream's meter is capturing once the log says so
        before = _rss_mib(psutil.Process(agent.process.pid))
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(agent.process.pid, samples, stop))
        sampler.start()
        try:
            rounds = _traffic(lab, tunnels, time.monotonic() + SECONDS, tally)
            wait_until(
                lambda: set(tally.vpn) <= {_line_key(x) for x in _verdicts(verdicts)}, SETTLE_S, 0.5
            )
        finally:
            stop.set()
            sampler.join()
        alive = agent.alive()
        agent_process = psutil.Process(agent.process.pid)
        after = _rss_mib(agent_process)
        meters_after = sum(_rss_mib(c) for c in agent_process.children(recursive=True))
        lines = _verdicts(verdicts)
        agent.stop()
    decided = {_line_key(x) for x in lines}
    missed = {k: v for k, v in tally.vpn.items() if k not in decided}
    plain_verdicts = [
        x
        for x in lines
        if not {int(str(x["src_port"])), int(str(x["dst_port"]))} & VPN_SERVER_PORTS
    ]
    by_kind: dict[str, int] = {}
    for kind in tally.vpn.values():
        by_kind[kind] = by_kind.get(kind, 0) + 1
    warm_at = SECONDS / 6
    warm = next((a for at, a, _m, _n in samples if at >= warm_at), before)
    meters_warm = next((m for at, _a, m, _n in samples if at >= warm_at), meters_after)
    peak = max((a for _at, a, _m, _n in samples), default=after)
    growth, meters_growth = after - warm, meters_after - meters_warm
    flat = growth < FLAT_SHARE * warm
    verdict = (
        f"Flows started: {len(tally.vpn)} VPN ("
        + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items()))
        + f") in {rounds} rounds, and {sum(tally.plain.values())} plain ("
        + ", ".join(f"{k} {v}" for k, v in tally.plain.items())
        + f"; {tally.plain_failed} of them unanswered). Missed verdicts: {len(missed)} "
        f"(target 0: {'met' if not missed else 'NOT met'}); verdicts for plain traffic: "
        f"{len(plain_verdicts)} (target 0: {'met' if not plain_verdicts else 'NOT met'}); "
        f"{len(lines)} verdict lines in all (the tunnels already up when the agent started are "
        f"decided mid-stream too); OpenVPN reconnections that did not come up: "
        f"{tally.openvpn_failed}; agent {'alive' if alive else 'DEAD'} at the end. "
        f"Agent memory (RSS, the agent process): {before:.0f} MiB at start, {warm:.0f} MiB "
        f"after {warm_at:.0f} s, {after:.0f} MiB at the end (peak {peak:.0f}); growth after "
        f"warm-up {growth:+.1f} MiB (target flat, under {FLAT_SHARE:.0%}: "
        f"{'met' if flat else 'NOT met'}). NFStream meters (forked children, summed): "
        f"{meters_warm:.0f} MiB after warm-up, {meters_after:.0f} MiB at the end "
        f"({meters_growth:+.1f} MiB)."
    )
    print(verdict)
    if missed:
        print("missed:", missed)
    if plain_verdicts:
        print("plain verdicts:", plain_verdicts[:5])
    step = max(1, len(samples) // 12)
    curve = ", ".join(f"{at:.0f} s {a:.0f}/{m:.0f}" for at, a, m, _n in samples[::step])
    body = "\n\n".join(
        [
            f"`vpnreg gateway --interface` (dry-run enforcement, A unregistered, verdict log on) "
            f"in the lab's gateway namespace for {SECONDS} s of mixed traffic between A and B, "
            f"a round every {ROUND_S:.0f} s: a new WireGuard flow (wireguard-go, A's listen port "
            f"changed) with a ping through the tunnel; every {OPENVPN_EVERY} rounds an OpenVPN "
            "client reconnecting (UDP and TCP in turn) with a ping through it; a ping, an HTTP "
            "GET and a UDP datagram from A to B outside any tunnel. A VPN flow is decided when a "
            "verdict line names its endpoints; a line naming no VPN server port of B is a "
            "verdict for plain traffic. Memory sampled every 5 s. Other work on the machine is "
            "not stopped. Run: `python -m bench.all bench_agent_soak` "
            "(`BENCH_AGENT_SOAK_SECONDS=120` for the short run; root and the lab's programs).",
            verdict,
            f"Memory samples (s, agent MiB / meters MiB): {curve}.",
        ]
    )
    write_section("agent_soak", f"Agent soak: {SECONDS} s of mixed traffic in the lab", body)


if __name__ == "__main__":
    main()
