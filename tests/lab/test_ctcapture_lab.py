"""`vpnreg gateway --capture conntrack` live in the lab's gateway (issue 18, ADR 0019).

The agent installs its capture tables and link in GW; conntrack hands it each connection's
first packets only. Real WireGuard and OpenVPN tunnels from an unregistered A are blocked
within the functional deadline of the other lab tests (10 s), a registered A passes, plain
traffic is untouched, a 10,000-datagram transfer puts no more than N packets per direction on
the agent's link, two agent processes split the connections so that each is decided by exactly
one of them, and everything installed is gone when the agent stops.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.lab.conftest import Tunnels
from tests.lab.netlab import B_IP, Lab, wait_until
from tests.lab.test_gateway_lab import (
    Agent,
    PlainPinger,
    new_wireguard_flow,
    restart_openvpn_client,
    restore_openvpn_tunnels,
    set_elements,
)

pytestmark = pytest.mark.lab

PACKETS = 16
CONNTRACK = ("--capture", "conntrack", "--capture-packets", str(PACKETS))


def installed(lab: Lab) -> tuple[list[str], list[str]]:
    """The agent's nftables tables and links in GW."""
    tables = [t for t in lab.gw_nft("list", "tables").splitlines() if "vpnreg" in t]
    links = lab.inside(lab.ns_gw, "ip", "-o", "link", "show").stdout
    return tables, [x for x in links.splitlines() if "vpnreg-cap" in x]


def copies_sent(lab: Lab, device: str = "vpnreg-cap0") -> int:
    """Packets transmitted on the capture link: every packet the agent can see."""
    out = lab.inside(lab.ns_gw, "ip", "-j", "-s", "link", "show", device).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])


def test_conntrack_capture_blocks_unregistered_tunnels_and_removes_what_it_installed(
    lab: Lab, tunnels: Tunnels, tmp_path: Path
) -> None:
    pinger = PlainPinger(lab)
    agent = Agent(lab, tmp_path, "nftables", extra=CONNTRACK)
    stopped = False
    try:
        tables, links = installed(lab)
        assert sorted(tables) == [
            "table inet vpnreg", "table ip vpnreg_capture0", "table ip6 vpnreg_capture0",
        ], tables  # fmt: skip
        assert len(links) == 2, links  # the capture link and its peer
        new_wireguard_flow(lab, 51911)
        assert wait_until(lambda: lab.tunnel_blocked(tunnels.wireguard), 10, 0), agent.log()
        for proto in ("udp", "tcp"):
            restart_openvpn_client(lab, proto)

        def openvpn_blocks() -> set[tuple[object, object]]:
            return {
                (x["ip_protocol"], x["action"])
                for x in agent.lines()
                if 1194 in (x["src_port"], x["dst_port"])
            }

        assert wait_until(lambda: {(17, "block"), (6, "block")} <= openvpn_blocks(), 10), (
            agent.lines(), agent.log(),
        )  # fmt: skip
        assert lab.tunnel_blocked(tunnels.openvpn_udp)
        assert lab.tunnel_blocked(tunnels.openvpn_tcp)
        assert lab.plain_traffic_works()  # ping v4/v6 and HTTP between the same hosts
        # registering A lifts the blocks and the tunnels come back
        agent.publish(registered=True)
        assert wait_until(lambda: set_elements(lab) == 0, 5, 0.02)
        assert lab.tunnel_works(tunnels.wireguard, within_s=10)
        assert lab.tunnel_works(tunnels.openvpn_udp, within_s=30)
        assert lab.tunnel_works(tunnels.openvpn_tcp, within_s=30)
        agent.stop()
        stopped = True
        assert installed(lab) == ([], [])
    finally:
        if not stopped:
            agent.stop()
        restore_openvpn_tunnels(lab, tunnels)
    sent, received = pinger.finish()
    assert sent > 20 and received == sent, (sent, received)


#: Counts the datagrams it receives until it sees b"end"; prints the count.
UDP_SINK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("sink ready", flush=True)
n = 0
while True:
    data, _ = s.recvfrom(65535)
    if data == b"end":
        break
    n += 1
print("received", n, flush=True)
"""

#: Sends N datagrams of 200 bytes from one source port, in bursts, then b"end".
UDP_SOURCE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 40555))
for i in range(int(sys.argv[3])):
    s.sendto(i.to_bytes(4, "big") * 50, (sys.argv[1], int(sys.argv[2])))
    if i % 200 == 199:
        time.sleep(0.01)
for _ in range(3):
    s.sendto(b"end", (sys.argv[1], int(sys.argv[2])))
"""


def test_bulk_packets_beyond_the_limit_never_reach_the_agent(lab: Lab, tmp_path: Path) -> None:
    python = shutil.which("python3") or sys.executable
    agent = Agent(lab, tmp_path, "dry-run", extra=CONNTRACK)
    try:
        sink = lab.spawn("udp-sink", lab.ns_b, [python, "-c", UDP_SINK, B_IP, "40556"])
        assert wait_until(lambda: "sink ready" in sink.log.read_text(errors="replace"), 5)
        before = copies_sent(lab)
        lab.inside(lab.ns_a, python, "-c", UDP_SOURCE, B_IP, "40556", "10000", timeout=60)
        assert wait_until(lambda: "received" in sink.log.read_text(errors="replace"), 10)
        received = int(sink.log.read_text().split("received")[1].split()[0])
        copies = copies_sent(lab) - before
        print(f"\n{received} datagrams forwarded, {copies} copies on the agent's link")
        assert received >= 9000  # the transfer went through the gateway
        # one direction, one connection (and a little of the lab's own new traffic)
        assert copies <= PACKETS + 10, copies
    finally:
        agent.stop()
    assert installed(lab) == ([], [])


def test_two_agent_processes_decide_each_connection_exactly_once(
    lab: Lab, tunnels: Tunnels, tmp_path: Path
) -> None:
    shards = []
    for index in range(2):
        directory = tmp_path / f"shard{index}"
        directory.mkdir()
        extra = (*CONNTRACK, "--shards", "2", "--shard", str(index))
        shards.append(Agent(lab, directory, "dry-run", extra=extra, name=f"-shard{index}"))
    ports = list(range(51921, 51931))
    try:
        tables, links = installed(lab)
        assert len(tables) == 4 and len(links) == 4, (tables, links)  # ip + ip6, link + peer
        for port in ports:  # ten new WireGuard connections, one after the other
            new_wireguard_flow(lab, port)
            assert lab.tunnel_works(tunnels.wireguard, within_s=10)

        def decided() -> list[set[int]]:
            return [
                {int(str(x["src_port"])) for x in shard.lines() if x["dst_port"] == 51820}
                | {int(str(x["dst_port"])) for x in shard.lines() if x["src_port"] == 51820}
                for shard in shards
            ]

        assert wait_until(lambda: set(ports) <= set.union(*decided()), 10), decided()
        first, second = (d & set(ports) for d in decided())
        print(f"\nshard 0 decided {sorted(first)}, shard 1 {sorted(second)}")
        assert not first & second  # never both
        assert first and second  # and both work (ten connections split by hash)
        for shard in shards:
            lines = [x for x in shard.lines() if x["dst_port"] == 51820 or x["src_port"] == 51820]
            ends = [(x["src_port"], x["dst_port"]) for x in lines]
            assert len(ends) == len(set(ends)), ends  # each decided once by its process
    finally:
        for shard in shards:
            shard.stop()
    assert installed(lab) == ([], [])
