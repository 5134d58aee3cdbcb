"""Issue 17's lab test: a subscriber-bound registration enforced end to end by real processes.

The registry (`vpnreg serve`, SQLite), `vpnreg radius` and the enforcing gateway agent all run in
the lab's gateway namespace; the gateway long-polls the server's feed. Bindings arrive as RADIUS
accounting from Debian's `radclient`, with the CGNAT port range in the vendor attribute
VPNReg-Port-Range. A's WireGuard client passes from a listen port inside its bound range, is
blocked from one outside it, and an Accounting Stop blocks its running tunnel (and its next
flow); A's plain traffic (ping, HTTP, a UDP datagram from a port outside the range) is never
touched throughout.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.console import VPNREG
from tests.lab.conftest import Tunnels
from tests.lab.netlab import A_IP, B_IP, Daemon, Lab, wait_until
from tests.lab.test_gateway_lab import PlainPinger, new_wireguard_flow, set_elements
from tests.registry import flow
from tests.registry.conftest import build_world, make_config
from vpnreg.core.review import Role
from vpnreg.feedkeys import ensure_dev_key, public_key_path
from vpnreg.radius import VENDOR_DICTIONARY
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.services.tokens import create_token

pytestmark = pytest.mark.lab

SUBSCRIBER = "LAB-LINE-1"
SECRET = "lab-radius-secret-9"
SERVE_PORT = 18000  # inside the gateway namespace, which is the lab's own
UDP_ECHO_PORT = 9999
#: A's bound CGNAT port block, a listen port inside it (then another) and one outside it.
PORTS = (40000, 40999)
INSIDE, INSIDE_AGAIN, INSIDE_AFTER_STOP, OUTSIDE = 40100, 40101, 40102, 41100
#: The issue's functional deadline for a stop to block the client.
STOP_DEADLINE_S = 10.0

UDP_ECHO = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind((sys.argv[1], int(sys.argv[2])))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(2048)\n"
    "    s.sendto(data, peer)\n"
)
UDP_ASK = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('', int(sys.argv[3])))\n"
    "s.settimeout(2)\n"
    "s.sendto(b'lab-udp', (sys.argv[1], int(sys.argv[2])))\n"
    "sys.exit(s.recv(2048) != b'lab-udp')\n"
)


@dataclass
class Stack:
    """The registry, RADIUS server and gateway agent of one test, all in the gateway namespace."""

    lab: Lab
    tmp: Path
    registration_id: int
    radius_port: int
    gateway: Daemon
    verdicts: Path

    def radclient(self, attributes: str) -> None:
        done = self.lab.inside(
            self.lab.ns_gw, "radclient", "-d", str(self.tmp), "-x", "-t", "3", "-r", "2",
            f"127.0.0.1:{self.radius_port}", "acct", SECRET,
            stdin=attributes, check=False, timeout=30,
        )  # fmt: skip
        answered = done.stdout.count("Received Accounting-Response")
        assert done.returncode == 0 and answered == 1, done.stdout + done.stderr

    def applied(self) -> int:
        return len(re.findall(r"feed serial \d+ applied", self.gateway.log.read_text("utf-8")))

    def lines(self, port: int) -> list[dict[str, object]]:
        if not self.verdicts.exists():
            return []
        found = [json.loads(x) for x in self.verdicts.read_text().splitlines()]
        return [x for x in found if port in (x["src_port"], x["dst_port"])]

    def udp_works(self, source_port: int) -> bool:
        python = shutil.which("python3") or sys.executable
        argv = (python, "-c", UDP_ASK, B_IP, str(UDP_ECHO_PORT), str(source_port))
        return self.lab.inside(self.lab.ns_a, *argv, check=False).returncode == 0

    def untouched(self) -> bool:
        """A's plain traffic: ping v4 (and v6), HTTP, and a UDP datagram from a port outside the
        bound range."""
        return self.lab.plain_traffic_works() and self.udp_works(OUTSIDE + 100)


def _prepare_registry(tmp: Path) -> tuple[str, int, str]:
    """A migrated SQLite registry with one subscriber-bound registration in force; returns its
    URL, the registration's id and a gateway feed token."""
    url = f"sqlite:///{tmp / 'registry.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        config, now = make_config(), dt.datetime.now(dt.UTC)
        with make_session_factory(engine)() as session:
            world = build_world(session, now, config)
            registration = flow.approved(session, world, config, now, [], subscriber_id=SUBSCRIBER)
            _, token = create_token(
                session, name="lab-gw", role=Role.GATEWAY, actor="cli:admin", now=now
            )
            return url, registration.id, token
    finally:
        engine.dispose()


def _wait_for(daemon: Daemon, pattern: str, timeout_s: float = 30) -> re.Match[str]:
    found: list[re.Match[str]] = []

    def seen() -> bool:
        assert daemon.alive(), daemon.log.read_text("utf-8", errors="replace")
        match = re.search(pattern, daemon.log.read_text("utf-8", errors="replace"))
        if match:
            found.append(match)
        return bool(found)

    assert wait_until(seen, timeout_s, 0.1), daemon.log.read_text("utf-8", errors="replace")
    return found[0]


@pytest.fixture
def stack(lab: Lab, tunnels: Tunnels, tmp_path: Path) -> Iterator[Stack]:
    url, registration_id, token = _prepare_registry(tmp_path)
    key = tmp_path / "feed.key"
    ensure_dev_key(key)
    env = {
        "VPNREG_DATABASE_URL": url,
        "VPNREG_DATA_DIR": str(tmp_path),
        "VPNREG_SECRET_KEY": "lab-bindings-secret-" + "k" * 24,
        "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
        "VPNREG_FEED_KEY": str(key),
    }
    (tmp_path / "secret").write_text(SECRET + "\n")
    # the ISP's BNG is 127.0.0.1 in the gateway namespace; the port block is the vendor attribute
    done = lab.run(
        "env", *(f"{k}={v}" for k, v in env.items()), str(VPNREG), "isps", "radius-client",
        "Nayatel", "--address", "127.0.0.1", "--secret-file", str(tmp_path / "secret"),
        "--ports-attribute", "VPNReg-Port-Range", check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # radclient reads the vendor attribute from the shipped dictionary, as an ISP's proxy would
    (tmp_path / "dictionary").write_text(f"$INCLUDE {VENDOR_DICTIONARY}\n")
    started: list[Daemon] = []
    try:
        python = shutil.which("python3") or sys.executable
        started.append(
            lab.spawn("udp-echo", lab.ns_b, [python, "-c", UDP_ECHO, B_IP, str(UDP_ECHO_PORT)])
        )
        serve = lab.spawn(
            "serve", lab.ns_gw,
            [str(VPNREG), "serve", "--host", "127.0.0.1", "--port", str(SERVE_PORT)], env=env,
        )  # fmt: skip
        started.append(serve)
        radius = lab.spawn(
            "radius", lab.ns_gw, [str(VPNREG), "radius", "--listen", "127.0.0.1:0"], env=env
        )
        started.append(radius)
        radius_port = int(_wait_for(radius, r"listening on 127\.0\.0\.1:(\d+)")[1])
        _wait_for(serve, r"Application startup complete")
        verdicts = tmp_path / "verdicts.jsonl"
        gateway = lab.spawn(
            "gateway-bindings", lab.ns_gw,
            [str(VPNREG), "gateway", "--interface", lab.if_gw_a,
             "--feed", f"http://127.0.0.1:{SERVE_PORT}/feed/v1",
             "--trust", str(public_key_path(key)), "--token", token,
             "--state-dir", str(tmp_path / "state"), "--enforce", "nftables",
             "--home", "198.51.100.0/24", "--verdicts", str(verdicts)],
        )  # fmt: skip
        started.append(gateway)
        _wait_for(gateway, r"started in")
        _wait_for(gateway, r'/feed/v1/snapshot "HTTP/1.1 200')  # its first feed, before "started"
        time.sleep(1.0)  # NFStream's meter is up once the agent logs its start; let it settle
        yield Stack(lab, tmp_path, registration_id, radius_port, gateway, verdicts)
        # SIGTERM: the agent removes its table and exits 0
        gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(timeout=15) == 0, gateway.log.read_text()
    finally:
        for daemon in reversed(started):
            daemon.stop()
        # the next test starts from a working WireGuard tunnel on its usual kind of port
        new_wireguard_flow(lab, 51903)
        assert lab.tunnel_works(tunnels.wireguard, within_s=15), "wireguard did not recover"


def test_radius_bound_cgnat_port_range_through_the_real_gateway(
    stack: Stack, lab: Lab, tunnels: Tunnels
) -> None:
    wireguard = tunnels.wireguard
    pinger = PlainPinger(lab)
    try:
        assert stack.untouched()
        line = (
            f'User-Name = "{SUBSCRIBER}", Acct-Session-Id = "lab-s1", '
            f'Framed-IP-Address = {A_IP}, VPNReg-Port-Range = "{PORTS[0]}-{PORTS[1]}"'
        )
        applied = stack.applied()
        stack.radclient(f"Acct-Status-Type = Start, {line}")
        assert wait_until(lambda: stack.applied() > applied, 10), stack.gateway.tail()

        # inside the bound range: registered, passes
        new_wireguard_flow(lab, INSIDE)
        assert lab.tunnel_works(wireguard, within_s=5)
        assert wait_until(lambda: bool(stack.lines(INSIDE)), 5), stack.gateway.tail()
        passed = stack.lines(INSIDE)
        assert {(x["verdict"], x["action"], x["registration_id"]) for x in passed} == {
            ("registered", "pass", stack.registration_id)
        }, passed
        assert stack.untouched()

        # the same client from a listen port outside the range: unregistered, blocked, and the
        # block carries the port, so only that flow is dropped
        new_wireguard_flow(lab, OUTSIDE)
        lab.ping(lab.ns_a, wireguard.b_inner, count=3)  # traffic makes the flow (may pass once)
        assert wait_until(lambda: bool(stack.lines(OUTSIDE)), 10), stack.gateway.tail()
        assert {(x["verdict"], x["action"]) for x in stack.lines(OUTSIDE)} == {
            ("unregistered", "block")
        }, stack.lines(OUTSIDE)
        assert lab.tunnel_blocked(wireguard)
        assert stack.untouched()

        # back inside the range: passes again while the outside flow's block still stands
        new_wireguard_flow(lab, INSIDE_AGAIN)
        assert lab.tunnel_works(wireguard, within_s=5)
        assert set_elements(lab) >= 1
        assert {x["action"] for x in stack.lines(INSIDE_AGAIN)} == {"pass"}

        # Accounting Stop: the running tunnel (passed at its start) is blocked within the
        # deadline, without a new flow; so is the client's next flow from inside the range
        stopped_at = time.monotonic()
        stack.radclient(f"Acct-Status-Type = Stop, {line}")
        assert wait_until(lambda: lab.tunnel_blocked(wireguard), STOP_DEADLINE_S, 0), (
            stack.gateway.tail()
        )
        took = time.monotonic() - stopped_at
        print(f"\nAccounting Stop to the running tunnel blocked: {took * 1000:.0f} ms")
        assert took < STOP_DEADLINE_S
        # (the running tunnel's key carries no port now that no range shares the address, so it
        # also holds a new flow to the same server: B never answers, the flow is never detected)
        new_wireguard_flow(lab, INSIDE_AFTER_STOP)
        assert lab.tunnel_blocked(wireguard)
        assert stack.untouched()
    finally:
        sent, received = pinger.finish()
    # A pinged B every 100 ms for the whole test: no echo went unanswered
    assert sent > 50 and received == sent, (sent, received)
