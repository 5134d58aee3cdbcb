"""The nftables back end in a real gateway namespace, against real WireGuard and OpenVPN tunnels."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.lab.conftest import Tunnels
from tests.lab.netlab import A_IP, A_IP6, B_IP, B_IP6, Lab, Tunnel, wait_until
from vpnreg.agent.enforce import DryRunBackend
from vpnreg.agent.nft import NftablesBackend, SubprocessNft
from vpnreg.clock import FrozenClock
from vpnreg.core.policy import (
    Action,
    BlockKey,
    FlowKey,
    Registration,
    SimpleIndex,
    Verdict,
    decide,
    lifted_by,
)

pytestmark = pytest.mark.lab

ip = ipaddress.ip_address
HOME = (ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8:a::/48"))
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def keys_for(tunnel: Tunnel, vpn: str) -> tuple[BlockKey, ...]:
    """What the policy decides for A's tunnel flow to B, with an empty allowlist."""
    flow = FlowKey(ip(A_IP), 40000, ip(B_IP), tunnel.port, tunnel.ip_protocol)
    decision = decide(
        flow=flow, vpn_protocol=vpn, index=SimpleIndex([]), home=HOME, dry_run=False,
        feed_serial=1, now=NOW,
    )  # fmt: skip
    assert (decision.verdict, decision.action) == (Verdict.UNREGISTERED, Action.BLOCK)
    return decision.block_keys


def drop_count(lab: Lab) -> int:
    text = lab.gw_nft("list", "chain", "inet", "vpnreg", "forward")
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", text))


def time_to_first_failed_ping(
    lab: Lab, tunnel: Tunnel, act: Callable[[], None]
) -> tuple[float, float]:
    """Ping through the tunnel every 20 ms, call ``act``; returns (act's duration, time from the
    start of ``act`` to the send time of the first echo request that got no reply)."""
    interval = 0.02
    pinger = subprocess.Popen(
        [*lab.netns_exec(lab.ns_a), "ping", "-n", "-D", "-O", "-i", str(interval), "-W", "1",
         tunnel.b_inner],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        started = time.time()
        act()
        returned = time.time()
        time.sleep(1.0)
    finally:
        pinger.send_signal(signal.SIGINT)
        out, _ = pinger.communicate(timeout=5)
    # each reply and each "no answer yet" line starts with [unix time]; the first unanswered request
    # was sent one interval before its "no answer yet" line (printed when the next one goes out)
    replies = re.findall(r"\[(\d+\.\d+)\] \d+ bytes from", out)
    assert replies, f"the tunnel did not work before the block:\n{out}"
    unanswered = [
        float(t) - interval for t in re.findall(r"\[(\d+\.\d+)\] no answer yet", out)
        if float(t) - interval >= started - interval
    ]  # fmt: skip
    assert unanswered, f"the tunnel kept working after the block:\n{out[-600:]}"
    return returned - started, max(0.0, min(unanswered) - started)


def test_wireguard_tunnel_works_through_gw(lab: Lab, tunnels: Tunnels) -> None:
    assert lab.tunnel_works(tunnels.wireguard, within_s=2)
    # the handshake really went A -> GW -> B: A knows B's endpoint and has a recent handshake
    shown = lab.inside(lab.ns_a, "wg", "show", f"wga{lab.tag}", "latest-handshakes").stdout
    assert int(shown.split()[-1]) > 0
    assert lab.plain_traffic_works()


def test_blocking_wireguard_stops_only_the_tunnel(
    lab: Lab, tunnels: Tunnels, gw: NftablesBackend
) -> None:
    keys = keys_for(tunnels.wireguard, "wireguard")
    assert keys == (BlockKey(ip(A_IP), ip(B_IP), 17, 51820),)
    took, to_fail = time_to_first_failed_ping(lab, tunnels.wireguard, lambda: gw.block(keys))
    print(f"\nwireguard: block() took {took * 1000:.1f} ms; "
          f"first failed ping {to_fail * 1000:.0f} ms after block() was called")  # fmt: skip
    assert lab.tunnel_blocked(tunnels.wireguard)
    assert lab.plain_traffic_works()  # ping (v4 and v6) and HTTP between A and B
    assert lab.tunnel_works(tunnels.openvpn_udp, within_s=2)
    assert lab.tunnel_works(tunnels.openvpn_tcp, within_s=2)
    assert [a.key for a in gw.active_blocks()] == list(keys)
    assert all(590 <= a.expires_in_s <= 600 for a in gw.active_blocks())
    assert drop_count(lab) > 0


@pytest.mark.parametrize("blocked", ["udp", "tcp"], ids=["block-udp", "block-tcp"])
def test_openvpn_udp_and_tcp_block_independently(
    lab: Lab, tunnels: Tunnels, gw: NftablesBackend, blocked: str
) -> None:
    target, other = (
        (tunnels.openvpn_udp, tunnels.openvpn_tcp)
        if blocked == "udp"
        else (tunnels.openvpn_tcp, tunnels.openvpn_udp)
    )
    assert lab.tunnel_works(target, within_s=2) and lab.tunnel_works(other, within_s=2)
    keys = keys_for(target, "openvpn")
    # same hosts, same port 1194: only the protocol tells the two tunnels apart
    assert keys == (BlockKey(ip(A_IP), ip(B_IP), target.ip_protocol, 1194),)
    gw.block(keys)
    assert lab.tunnel_blocked(target)
    assert lab.tunnel_works(other, within_s=2)
    assert lab.tunnel_works(tunnels.wireguard, within_s=2)
    assert lab.plain_traffic_works()


def test_unblocking_restores_the_tunnels(lab: Lab, tunnels: Tunnels, gw: NftablesBackend) -> None:
    wg_keys = keys_for(tunnels.wireguard, "wireguard")
    udp_keys = keys_for(tunnels.openvpn_udp, "openvpn")
    gw.block(wg_keys + udp_keys)
    assert lab.tunnel_blocked(tunnels.wireguard)
    assert lab.tunnel_blocked(tunnels.openvpn_udp)
    # A's prefix gets registered for B only: the agent lifts what the registration covers
    registration = Registration(7, ipaddress.ip_network("198.51.100.0/24"),
                                (ipaddress.ip_network("203.0.113.2/32"),))  # fmt: skip
    started = time.monotonic()
    removed = gw.unblock_matching(lifted_by(registration))
    took = time.monotonic() - started
    assert set(removed) == set(wg_keys + udp_keys)
    assert gw.active_blocks() == ()
    restored = time.monotonic()
    assert lab.tunnel_works(tunnels.wireguard, within_s=5)
    assert lab.tunnel_works(tunnels.openvpn_udp, within_s=5)
    print(f"\nunblock_matching() took {took * 1000:.1f} ms; tunnels answered again "
          f"{(time.monotonic() - restored) * 1000:.0f} ms later")  # fmt: skip


def test_unblock_of_another_peer_changes_nothing(
    lab: Lab, tunnels: Tunnels, gw: NftablesBackend
) -> None:
    keys = keys_for(tunnels.wireguard, "wireguard")
    gw.block(keys)
    other_peer = Registration(8, ipaddress.ip_network("198.51.100.0/24"),
                              (ipaddress.ip_network("192.0.2.0/24"),))  # fmt: skip
    assert gw.unblock_matching(lifted_by(other_peer)) == ()
    assert lab.tunnel_blocked(tunnels.wireguard)


def test_a_cgnat_key_drops_only_the_flow_from_its_domestic_port(
    lab: Lab, tunnels: Tunnels, gw: NftablesBackend
) -> None:
    """A's address is shared (CGNAT), another subscriber holds a registered port block: the
    policy's key carries A's own WireGuard port, and a key for another domestic port between
    the same hosts leaves A's tunnel alone."""
    assert lab.tunnel_works(tunnels.wireguard, within_s=2)
    shown = lab.inside(lab.ns_a, "wg", "show", f"wga{lab.tag}", "listen-port").stdout
    a_port = int(shown.split()[-1])
    lo = 1024 if a_port >= 4096 else 8192
    other_block = Registration(9, ipaddress.ip_network(f"{A_IP}/32"), ports=(lo, lo + 1023))
    flow = FlowKey(ip(A_IP), a_port, ip(B_IP), 51820, 17)
    decision = decide(
        flow=flow, vpn_protocol="wireguard", index=SimpleIndex([other_block]), home=HOME,
        dry_run=False, feed_serial=1, now=NOW,
    )  # fmt: skip
    assert decision.verdict is Verdict.UNREGISTERED
    assert decision.block_keys == (BlockKey(ip(A_IP), ip(B_IP), 17, 51820, a_port),)
    # a neighbour's flow from another port of the same address to the same server
    gw.block([BlockKey(ip(A_IP), ip(B_IP), 17, 51820, lo)])
    assert lab.tunnel_works(tunnels.wireguard, within_s=2)
    gw.block(decision.block_keys)
    assert lab.tunnel_blocked(tunnels.wireguard)
    assert lab.tunnel_works(tunnels.openvpn_udp, within_s=2)
    assert lab.plain_traffic_works()
    assert {a.key for a in gw.active_blocks()} == {
        BlockKey(ip(A_IP), ip(B_IP), 17, 51820, lo),
        *decision.block_keys,
    }
    # a registration of A's own port block lifts A's key and only it
    own = Registration(10, ipaddress.ip_network(f"{A_IP}/32"), ports=(a_port, a_port))
    assert gw.unblock_matching(lifted_by(own)) == decision.block_keys
    assert lab.tunnel_works(tunnels.wireguard, within_s=5)


def test_ipv6_key_blocks_only_ipv6(lab: Lab, gw: NftablesBackend) -> None:
    assert lab.ipv6, "IPv6 forwarding should work on these machines"
    key = BlockKey(ip(A_IP6), ip(B_IP6), 58)  # ICMPv6 stands in for an address-keyed protocol
    gw.block([key])
    assert not lab.ping(lab.ns_a, B_IP6, count=3)
    assert lab.ping(lab.ns_a, B_IP)
    assert lab.http_works()
    gw.unblock([key])
    assert wait_until(lambda: lab.ping(lab.ns_a, B_IP6), 3)


def test_start_rebuilds_in_place_and_stop_leaves_other_tables(lab: Lab, tunnels: Tunnels) -> None:
    # someone else's table in GW, which the agent must never touch
    lab.gw_nft("-f", "-", stdin=(
        "table inet lab_other {\n"
        "  set keep { type ipv4_addr; elements = { 192.0.2.9 } }\n"
        "  chain guard {\n"
        "    type filter hook forward priority 10; policy accept; ip saddr @keep drop;\n"
        "  }\n"
        "}\n"
    ))  # fmt: skip
    try:
        before = lab.gw_nft("-s", "list", "ruleset")
        backend = NftablesBackend(SubprocessNft(prefix=lab.netns_exec(lab.ns_gw)))
        backend.start()
        backend.block(keys_for(tunnels.wireguard, "wireguard"))
        assert lab.tunnel_blocked(tunnels.wireguard)
        started = time.monotonic()
        backend.start()  # a restart: the table is rebuilt in one transaction, blocks gone
        rebuilt = time.monotonic() - started
        print(f"\nstart() over a live table took {rebuilt * 1000:.1f} ms")
        assert backend.active_blocks() == ()
        assert lab.tunnel_works(tunnels.wireguard, within_s=5)
        assert "table inet vpnreg" in lab.gw_nft("list", "tables")
        backend.stop()
        assert lab.gw_nft("-s", "list", "ruleset") == before
        assert "vpnreg" not in lab.gw_nft("list", "tables")
        backend.stop()  # idempotent: stopping twice is fine
    finally:
        lab.gw_nft("delete", "table", "inet", "lab_other")


def test_dry_run_blocks_nothing(lab: Lab, tunnels: Tunnels, clock: FrozenClock) -> None:
    backend = DryRunBackend(clock)
    backend.start()
    keys = keys_for(tunnels.wireguard, "wireguard")
    backend.block(keys)
    assert [k for _, k in backend.would_block] == list(keys)
    assert "vpnreg" not in lab.gw_nft("list", "tables")
    assert lab.tunnel_works(tunnels.wireguard, within_s=2)
