"""Faults of the agent itself, in the lab (issue 16): killed with SIGKILL while it holds blocks,
restarted over a feed file that is now corrupt (nftables state owned by others, a table of
another name and a table named `vpnreg` in another family, stays byte-identical throughout);
and a verdict log on a full disk while it blocks."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import time
from pathlib import Path

import pytest

from tests.agent_gateway.feeds import Signer, entry, replace_file
from tests.console import VPNREG
from tests.fixtures.disk import fill, small_disk
from tests.lab.conftest import Tunnels
from tests.lab.netlab import A_IP, Daemon, Lab, wait_until
from tests.lab.test_gateway_lab import HOME, new_wireguard_flow, restore_openvpn_tunnels
from vpnreg.agent.nft import NftablesBackend, SubprocessNft
from vpnreg.core.policy import BlockKey

pytestmark = pytest.mark.lab

#: Someone else's nftables state in GW: the agent may touch none of it. One table shares the
#: agent's name in another family; the sets hold elements, the chains hook the same forward path.
FOREIGN = """\
table inet lab_other {
  set keep { type ipv4_addr; elements = { 192.0.2.9, 192.0.2.10 } }
  chain guard {
    type filter hook forward priority 10; policy accept;
    ip saddr @keep drop
  }
}
table ip vpnreg {
  set others { type ipv4_addr . inet_service; elements = { 192.0.2.77 . 8080 } }
  chain pre { type filter hook prerouting priority -5; policy accept; }
}
"""


#: A block the dead agent held for a flow that is gone: a restart must not keep it.
STALE = BlockKey(
    ipaddress.ip_address("198.51.100.200"), ipaddress.ip_address("203.0.113.200"), 17, 4500
)


def agent_table(lab: Lab) -> NftablesBackend:
    return NftablesBackend(SubprocessNft(prefix=lab.netns_exec(lab.ns_gw)))


def table_exists(lab: Lab) -> bool:
    return "table inet vpnreg" in lab.gw_nft("list", "tables")


def held_keys(lab: Lab) -> set[BlockKey]:
    return {a.key for a in agent_table(lab).active_blocks()} if table_exists(lab) else set()


def gateway_processes(lab: Lab) -> list[str]:
    """Pids of `vpnreg gateway` processes (the agent or its forked meters) in GW."""
    found = []
    for pid in lab.run("ip", "netns", "pids", lab.ns_gw, check=False).stdout.split():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b" gateway " in command and b"vpnreg" in command:
            found.append(pid)
    return found


def foreign_state(lab: Lab) -> str:
    """The foreign tables as nft prints them, stateless (-s: no counters or timeouts)."""
    return lab.gw_nft("-s", "list", "table", "inet", "lab_other") + lab.gw_nft(
        "-s", "list", "table", "ip", "vpnreg"
    )


class Gateway:
    """`vpnreg gateway` enforcing in GW over a feed file, restartable over the same state."""

    def __init__(self, lab: Lab, tmp: Path, *, verdicts: Path | None = None) -> None:
        self.lab, self.tmp = lab, tmp
        self.signer = Signer(tmp)
        self.feed = tmp / "feed.json"
        self.verdicts = verdicts or tmp / "verdicts.jsonl"
        self.daemon: Daemon | None = None
        self.runs = 0

    def publish(self, serial: int, *, registered: bool) -> None:
        entries = [entry("192.0.2.0/24", 1)]
        if registered:
            entries.append(entry("198.51.100.0/24", 2))
        created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        replace_file(self.feed, self.signer.snapshot(entries, serial=serial, created=created))

    def start(self) -> Daemon:
        self.runs += 1
        argv = [str(VPNREG), "gateway", "--interface", self.lab.if_gw_a,
                "--feed", str(self.feed), "--trust", str(self.signer.public_path),
                "--state-dir", str(self.tmp / "state"), "--enforce", "nftables",
                "--verdicts", str(self.verdicts)]  # fmt: skip
        for prefix in HOME:
            argv += ["--home", prefix]
        self.daemon = self.lab.spawn(f"gateway-run{self.runs}", self.lab.ns_gw, argv)
        assert wait_until(lambda: "started in" in self.log(), 15), self.log()
        time.sleep(1.0)  # NFStream's meter is capturing once the log says so, give it a breath
        return self.daemon

    def log(self) -> str:
        assert self.daemon is not None
        return self.daemon.log.read_text(errors="replace")

    def blocks(self) -> list[dict[str, object]]:
        if not self.verdicts.exists():
            return []
        lines = [json.loads(x) for x in self.verdicts.read_text().splitlines() if x.strip()]
        return [x for x in lines if x.get("action") == "block"]


def test_sigkill_while_blocking_then_restart_over_a_corrupt_feed(
    lab: Lab, tunnels: Tunnels, tmp_path: Path
) -> None:
    lab.gw_nft("-f", "-", stdin=FOREIGN)
    gateway = Gateway(lab, tmp_path)
    try:
        before = foreign_state(lab)
        gateway.publish(1, registered=False)
        first = gateway.start()
        new_wireguard_flow(lab, 51911)
        assert wait_until(lambda: lab.tunnel_blocked(tunnels.wireguard), 10, 0), gateway.log()
        agent_table(lab).block([STALE])  # one more block held, for a flow long gone
        held = held_keys(lab)
        assert STALE in held and len(held) >= 2

        first.process.kill()  # SIGKILL: no handler runs, nothing is cleaned up
        first.process.wait(timeout=5)
        # NFStream's meter, forked by the agent, dies with it (it used to live on, capturing)
        assert wait_until(lambda: gateway_processes(lab) == [], 5), gateway_processes(lab)
        # Killed, the agent leaves its table as it was: the blocks it held keep holding (until
        # their timeout: fail closed for what was blocked), and nothing of anyone else's changed.
        assert held_keys(lab) == held
        assert lab.tunnel_blocked(tunnels.wireguard)
        assert lab.plain_traffic_works()
        assert foreign_state(lab) == before

        # While it was down the feed file got corrupted: the last good copy is in the state dir.
        gateway.feed.write_bytes(b'{"type": "snapshot", "serial": 99, "entr')
        blocks_before = len(gateway.blocks())
        gateway.start()
        log = gateway.log()
        assert "feed:" in log and "refused" in log, log
        assert "no verified feed held" not in log, log
        # The table was rebuilt in one transaction (the stale block is gone), and the last good
        # feed (serial 1, A unregistered) blocks the tunnel's traffic again.
        assert STALE not in held_keys(lab)
        new_wireguard_flow(lab, 51912)
        assert wait_until(lambda: lab.tunnel_blocked(tunnels.wireguard), 10, 0), gateway.log()
        fresh = gateway.blocks()[blocks_before:]
        assert fresh and {b["feed_serial"] for b in fresh} == {1}, fresh
        assert A_IP in {b["src_ip"] for b in fresh} | {b["dst_ip"] for b in fresh}
        assert STALE not in held_keys(lab)
        assert lab.plain_traffic_works()
        assert foreign_state(lab) == before

        # A good feed registering A lifts the block without a restart.
        gateway.publish(2, registered=True)
        assert wait_until(lambda: held_keys(lab) == set(), 10), gateway.log()
        assert lab.tunnel_works(tunnels.wireguard, within_s=10)
        assert gateway.daemon is not None
        gateway.daemon.stop()  # SIGTERM: fail open, the agent's table is removed
        assert gateway.daemon.process.returncode == 0, gateway.log()
        assert not table_exists(lab)
        assert foreign_state(lab) == before
    finally:
        if gateway.daemon is not None:
            gateway.daemon.stop()
        lab.gw_nft("delete", "table", "inet", "lab_other")
        lab.gw_nft("delete", "table", "ip", "vpnreg")
        if table_exists(lab):
            lab.gw_nft("delete", "table", "inet", "vpnreg")
        restore_openvpn_tunnels(lab, tunnels)
        assert lab.tunnel_works(tunnels.wireguard, within_s=15)


def test_a_full_verdict_disk_does_not_stop_blocking(
    lab: Lab, tunnels: Tunnels, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", size_kib=64) as disk:
        gateway = Gateway(lab, tmp_path, verdicts=disk / "verdicts.jsonl")
        try:
            fill(disk)
            gateway.publish(1, registered=False)
            daemon = gateway.start()
            new_wireguard_flow(lab, 51913)
            assert wait_until(lambda: lab.tunnel_blocked(tunnels.wireguard), 10, 0), gateway.log()
            assert wait_until(lambda: "verdicts go unrecorded" in gateway.log(), 5), gateway.log()
            assert "No space left on device" in gateway.log()
            assert daemon.alive() and held_keys(lab)
            assert lab.plain_traffic_works()
            daemon.stop()
            assert daemon.process.returncode == 0, gateway.log()
            assert not table_exists(lab)
        finally:
            if gateway.daemon is not None:
                gateway.daemon.stop()
            if table_exists(lab):
                lab.gw_nft("delete", "table", "inet", "vpnreg")
            assert lab.tunnel_works(tunnels.wireguard, within_s=15)
