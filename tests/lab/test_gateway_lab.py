"""The real `vpnreg gateway` live in the lab's gateway namespace, enforcing with nftables against
real WireGuard and OpenVPN tunnels; the feed is a signed snapshot file replaced atomically.

New OpenVPN connections are made by restarting the clients after the agent starts (recognised
at their handshake); tunnels already up when the agent starts are recognised mid-stream from
their data channel, as are WireGuard's, whose new flow is made by changing A's source port.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.agent_gateway.feeds import Signer, entry, replace_file
from tests.console import VPNREG
from tests.lab.conftest import Tunnels
from tests.lab.netlab import A_IP, B_IP, Daemon, Lab, wait_until
from tests.lab.test_nft_lab import time_to_first_failed_ping
from vpnreg.agent.nft import NftablesBackend, SubprocessNft

pytestmark = pytest.mark.lab

HOME = ("198.51.100.0/24", "2001:db8:a::/48")


class Agent:
    def __init__(
        self,
        lab: Lab,
        tmp: Path,
        enforce: str,
        *,
        extra: Sequence[str] = (),
        name: str = "",
    ) -> None:
        self.lab, self.tmp = lab, tmp
        self.signer = Signer(tmp)
        self.feed = tmp / f"feed{name}.json"
        self.verdicts = tmp / f"verdicts{name}.jsonl"
        self.serial = 0
        self.publish(registered=False)
        argv = [str(VPNREG), "gateway", "--interface", lab.if_gw_a,
                "--feed", str(self.feed), "--trust", str(self.signer.public_path),
                "--state-dir", str(tmp / f"state{name}"), "--enforce", enforce,
                "--verdicts", str(self.verdicts), *extra]  # fmt: skip
        for prefix in HOME:
            argv += ["--home", prefix]
        self.daemon: Daemon = lab.spawn(f"gateway-{enforce}{name}", lab.ns_gw, argv)
        # NFStream captures once its meter is up; the log says so before the first flow
        assert wait_until(lambda: "started in" in self.log(), 15), self.log()
        time.sleep(1.0)

    def publish(self, *, registered: bool) -> None:
        self.serial += 1
        entries = [entry("192.0.2.0/24", 1)]
        if registered:
            entries.append(entry("198.51.100.0/24", 2, "203.0.113.0/24"))
        created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        replace_file(self.feed, self.signer.snapshot(entries, serial=self.serial, created=created))

    def log(self) -> str:
        return self.daemon.log.read_text(errors="replace")

    def lines(self) -> list[dict[str, object]]:
        if not self.verdicts.exists():
            return []
        return [json.loads(x) for x in self.verdicts.read_text().splitlines()]

    def stop(self) -> float:
        started = time.monotonic()
        self.daemon.process.send_signal(signal.SIGTERM)
        try:
            code = self.daemon.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"agent did not stop: {self.log()}") from None
        took = time.monotonic() - started
        assert code == 0, self.log()
        return took


def table_exists(lab: Lab) -> bool:
    return "vpnreg" in lab.gw_nft("list", "tables")


def set_elements(lab: Lab) -> int:
    backend = NftablesBackend(SubprocessNft(prefix=lab.netns_exec(lab.ns_gw)))
    return len(backend.active_blocks())


def restart_openvpn_client(lab: Lab, proto: str) -> None:
    """A new OpenVPN connection from A. OpenVPN in point-to-point UDP mode only talks to the
    peer address it first saw, so for UDP the server in B is restarted too."""
    sides = (("b", lab.ns_b), ("a", lab.ns_a)) if proto == "udp" else (("a", lab.ns_a),)
    for side, ns in sides:
        name = f"ovpn-{proto}-{side}"
        old = next(d for d in reversed(lab.daemons) if d.name == name)
        old.stop()
        args = [str(a) for a in old.process.args]  # type: ignore[union-attr]
        new = lab.spawn(name, ns, args[len(lab.netns_exec(ns)) :])
        if side == "b":
            assert wait_until(lambda log=new.log: "UDPv4 link local" in log.read_text("utf-8"), 5)


def restore_openvpn_tunnels(lab: Lab, tunnels: Tunnels) -> None:
    """Leave working OpenVPN tunnels to the next tests, whatever happened in this one."""
    for proto, tunnel in (("udp", tunnels.openvpn_udp), ("tcp", tunnels.openvpn_tcp)):
        if not lab.tunnel_works(tunnel, within_s=3):
            restart_openvpn_client(lab, proto)
            lab.tunnel_works(tunnel, within_s=15)


def new_wireguard_flow(lab: Lab, port: int) -> None:
    lab.inside(lab.ns_a, "wg", "set", f"wga{lab.tag}", "listen-port", str(port))


class PlainPinger:
    """Pings B from A every 100 ms for the whole test; every echo must be answered."""

    def __init__(self, lab: Lab) -> None:
        self.process = subprocess.Popen(
            [*lab.netns_exec(lab.ns_a), "ping", "-n", "-i", "0.1", "-W", "1", B_IP],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def finish(self) -> tuple[int, int]:
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=5)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert m, out
        return int(m.group(1)), int(m.group(2))


@pytest.fixture
def pinger(lab: Lab) -> Iterator[PlainPinger]:
    p = PlainPinger(lab)
    yield p
    if p.process.poll() is None:
        p.process.kill()
        p.process.wait()


def test_dry_run_blocks_nothing(lab: Lab, tunnels: Tunnels, tmp_path: Path) -> None:
    agent = Agent(lab, tmp_path, "dry-run")
    try:
        new_wireguard_flow(lab, 51901)
        restart_openvpn_client(lab, "udp")
        assert lab.tunnel_works(tunnels.wireguard, within_s=5)
        assert lab.tunnel_works(tunnels.openvpn_udp, within_s=15)
        assert wait_until(lambda: len(agent.lines()) >= 2, 5), agent.log()
        lines = agent.lines()
        assert {x["vpn_protocol"] for x in lines} >= {"wireguard", "openvpn"}
        assert {(x["verdict"], x["action"]) for x in lines} == {("unregistered", "report")}
        assert not table_exists(lab)
        assert lab.tunnel_works(tunnels.wireguard, within_s=2)
    finally:
        agent.stop()


def test_enforcing_blocks_unregistered_tunnels_only_until_registered(
    lab: Lab, tunnels: Tunnels, tmp_path: Path, pinger: PlainPinger
) -> None:
    agent = Agent(lab, tmp_path, "nftables")
    stopped = False
    try:
        assert table_exists(lab)
        # WireGuard: a new flow while pinging through the tunnel every 20 ms
        _took, to_fail = time_to_first_failed_ping(
            lab, tunnels.wireguard, lambda: new_wireguard_flow(lab, 51902)
        )
        print(f"\nwireguard: tunnel stopped {to_fail * 1000:.0f} ms after its new flow began")
        assert to_fail < 10
        assert lab.tunnel_blocked(tunnels.wireguard)
        # OpenVPN over UDP and TCP: new connections are refused at their handshake (or already
        # at their data channel, when the running tunnel's keepalives reached the agent first;
        # then B's packet may have opened the flow, so port 1194 is on either side)
        for proto in ("udp", "tcp"):
            restart_openvpn_client(lab, proto)

        def openvpn_blocks() -> set[tuple[object, object]]:
            return {
                (x["ip_protocol"], x["action"])
                for x in agent.lines()
                if 1194 in (x["src_port"], x["dst_port"])
            }

        assert wait_until(lambda: {(17, "block"), (6, "block")} <= openvpn_blocks(), 10), (
            agent.lines()
        )
        assert wait_until(lambda: set_elements(lab) >= 3, 5), agent.lines()
        assert lab.tunnel_blocked(tunnels.openvpn_udp)
        assert lab.tunnel_blocked(tunnels.openvpn_tcp)
        assert lab.plain_traffic_works()  # ping v4/v6 and HTTP between the same hosts
        # registering A lifts the blocks, and the tunnels come back
        started = time.monotonic()
        agent.publish(registered=True)
        assert wait_until(lambda: set_elements(lab) == 0, 5, 0.02)
        lifted = time.monotonic() - started
        print(f"blocks lifted {lifted * 1000:.0f} ms after the feed file was replaced")
        assert lab.tunnel_works(tunnels.wireguard, within_s=5)
        assert lab.tunnel_works(tunnels.openvpn_udp, within_s=30)
        assert lab.tunnel_works(tunnels.openvpn_tcp, within_s=30)
        assert lab.plain_traffic_works()
        took_stop = agent.stop()
        stopped = True
        print(f"agent stopped in {took_stop * 1000:.0f} ms")
        assert took_stop < 5
        assert not table_exists(lab)
    finally:
        if not stopped:
            agent.stop()
        restore_openvpn_tunnels(lab, tunnels)
    sent, received = pinger.finish()
    assert sent > 20 and received == sent, (sent, received)


def test_openvpn_tunnels_up_before_the_agent_started_are_blocked_mid_session(
    lab: Lab, tunnels: Tunnels, tmp_path: Path, pinger: PlainPinger
) -> None:
    for tunnel in (tunnels.openvpn_udp, tunnels.openvpn_tcp):
        assert lab.tunnel_works(tunnel, within_s=30)
    agent = Agent(lab, tmp_path, "nftables")
    try:
        for tunnel in (tunnels.openvpn_udp, tunnels.openvpn_tcp):
            started = time.monotonic()
            # traffic through the tunnel is what the agent sees: data packets, no handshake
            assert wait_until(lambda t=tunnel: lab.tunnel_blocked(t), 10, 0), agent.lines()
            print(f"\n{tunnel.name}: blocked {time.monotonic() - started:.1f} s into its traffic")
        rules = {(x["ip_protocol"], x["classification_rule"], x["action"]) for x in agent.lines()}
        assert {(17, "openvpn-data", "block"), (6, "openvpn-data", "block")} <= rules
        assert lab.plain_traffic_works()
    finally:
        agent.stop()
        restore_openvpn_tunnels(lab, tunnels)
    sent, received = pinger.finish()
    assert sent > 20 and received == sent, (sent, received)


def test_sighup_rereads_the_configuration_file(lab: Lab, tunnels: Tunnels, tmp_path: Path) -> None:
    """A real SIGHUP to the running agent: dry-run -> nftables from the file, a broken file
    refused with the running configuration kept, then SIGTERM removes the table."""
    signer = Signer(tmp_path)
    feed = tmp_path / "feed.json"
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    replace_file(feed, signer.snapshot([entry("192.0.2.0/24", 1)], serial=1, created=created))
    conf = tmp_path / "gateway.toml"

    def write(enforce: str) -> None:
        conf.write_text(
            f'feed = "{feed}"\ntrust = ["{signer.public_path}"]\n'
            f'home = ["{HOME[0]}"]\nenforce = "{enforce}"\n'
            f'state_dir = "{tmp_path / "state"}"\nverdicts = "{tmp_path / "verdicts.jsonl"}"\n'
        )

    write("dry-run")
    argv = [str(VPNREG), "gateway", "--interface", lab.if_gw_a, "--config", str(conf)]
    daemon = lab.spawn("gateway-sighup", lab.ns_gw, argv)
    log = lambda: daemon.log.read_text(errors="replace")  # noqa: E731
    try:
        assert wait_until(lambda: "started in" in log(), 15), log()
        assert not table_exists(lab)
        write("nftables")
        daemon.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "configuration reloaded" in log() and table_exists(lab), 5), log()
        time.sleep(1.0)
        new_wireguard_flow(lab, 51903)
        assert wait_until(lambda: lab.tunnel_blocked(tunnels.wireguard), 10, 0), log()
        conf.write_text("home = [")
        daemon.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload refused, configuration kept" in log(), 5), log()
        assert daemon.alive() and table_exists(lab)
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        code = daemon.process.wait(timeout=10)
    assert code == 0, log()
    assert not table_exists(lab)
    assert lab.tunnel_works(tunnels.wireguard, within_s=10)


#: A plain UDP echo service: every datagram goes back to its sender as it came.
ECHO_SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[2:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(port)))
    sel.register(s, selectors.EVENT_READ)
print("echo ready", flush=True)
while True:
    for key, _ in sel.select():
        data, peer = key.fileobj.recvfrom(65535)
        key.fileobj.sendto(data, peer)
"""

#: Sends a datagram three times (as a client retrying its hard reset) from a fixed source port;
#: exit 0 iff every echo came back unchanged.
ECHO_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[3])))
s.settimeout(1.0)
payload = bytes.fromhex(sys.argv[4])
for _ in range(3):
    s.sendto(payload, (sys.argv[1], int(sys.argv[2])))
    try:
        data, _ = s.recvfrom(65535)
    except TimeoutError:
        sys.exit(1)
    if data != payload:
        sys.exit(2)
"""


def test_udp_echo_of_an_openvpn_client_reset_is_unconfirmed_and_keeps_working(
    lab: Lab, tunnels: Tunnels, tmp_path: Path
) -> None:
    """Issue 16 item 2: a UDP echo service in A (domestic) on 1194 and on a random port, probed
    from B with datagrams shaped like an OpenVPN client hard reset (random and zero session
    ids). nDPI calls the reflection OpenVPN; the agent records it as unconfirmed and blocks
    nothing: the echo keeps answering."""
    python = shutil.which("python3") or sys.executable
    random_port = 30000 + int.from_bytes(os.urandom(2), "big") % 20000
    echo = lab.spawn(
        "udp-echo", lab.ns_a, [python, "-c", ECHO_SERVER, A_IP, "1194", str(random_port)]
    )
    assert wait_until(lambda: "echo ready" in echo.log.read_text(errors="replace"), 5), echo.tail()
    sids = {"random": os.urandom(8), "zero": bytes(8)}

    def probe(port: int, sport: int, sid: bytes) -> bool:
        reset = b"\x38" + sid + b"\x00" + bytes(4)
        done = lab.inside(
            lab.ns_b, python, "-c", ECHO_CLIENT, A_IP, str(port), str(sport), reset.hex(),
            check=False,
        )  # fmt: skip
        return done.returncode == 0

    cases = [
        (port, 42000 + i, sid)
        for i, (port, sid) in enumerate((p, s) for p in (1194, random_port) for s in sids.values())
    ]
    backend = NftablesBackend(SubprocessNft(prefix=lab.netns_exec(lab.ns_gw)))

    def echo_blocks() -> list[object]:
        # the running tunnels may be blocked mid-session meanwhile; the echo's keys never
        sports = {c[1] for c in cases}
        return [b for b in backend.active_blocks() if b.key.remote_port in sports]

    agent = Agent(lab, tmp_path, "nftables")
    try:
        for port, sport, sid in cases:
            assert probe(port, sport, sid), (port, sid.hex())

        # the flows are handed over at detection (nDPI labels the reflection by DPI)
        def probed() -> list[dict[str, object]]:
            return [x for x in agent.lines() if x["src_port"] in {c[1] for c in cases}]

        assert wait_until(lambda: len(probed()) == len(cases), 10), (agent.lines(), agent.log())
        for line in probed():
            assert (line["application"], line["classification_rule"]) == (
                "OpenVPN", "ndpi-unconfirmed",
            ), line  # fmt: skip
            assert (line["verdict"], line["action"], line["rule"]) == (
                "unconfirmed", "pass", "unconfirmed",
            ), line  # fmt: skip
            assert line["vpn"] is False
        assert echo_blocks() == []
        # the echo service keeps working, from the same source ports
        for port, sport, sid in cases:
            assert probe(port, sport, sid), (port, sid.hex())
        assert echo_blocks() == []
    finally:
        agent.stop()
        echo.stop()
