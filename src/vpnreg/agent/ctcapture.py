"""Conntrack capture: the kernel hands the agent only the first packets of each connection.

`vpnreg gateway --capture conntrack` (ADR 0019) does not capture the interface. It installs its
own nftables tables, ``ip vpnreg_capture<S>`` and ``ip6 vpnreg_capture<S>``, whose forward-hook
chains (before the enforcement table's, so they also see packets a block drops) duplicate to a
capture link only the packets of connections that conntrack has counted at most N times in their
direction (``ct original packets`` / ``ct reply packets``). The agent reads that link as it reads
an interface today, so NFStream and nDPI see each connection's first N packets per direction
and bulk traffic never leaves the kernel.

The capture link is a veth pair made by the agent: ``dup to ... device vpnreg-cap<S>`` transmits
the copy on one end, where AF_PACKET (NFStream's libpcap) sees it; the copy then arrives on the
other end, ``vpnreg-cap<S>p``, where a prerouting rule of the same table drops it before
conntrack or routing (a veth rather than a dummy interface because the dummy driver is often not
available in containers; NFLOG because NFStream's engine does not decode its link type).

Packets of a connection the enforcement table dropped are always copied: the drop rules mark the
connection (`BLOCKED_MARK`, one bit of the conntrack mark), so a blocked tunnel that goes on
sending past N packets still reaches the agent, which keeps its block refreshed (as the
interface capture does); the mark is cleared when a packet of the connection is no longer
dropped.

Several agent processes share one gateway by shard: process S of K copies only connections whose
symmetric flow hash (``symhash mod K``) is S, to its own link and table, and enforces in its own
table, so each connection is decided by exactly one process.

Everything here is rendered as data (nft scripts, ip argument lists) and applied through the
`NftRunner` seam and a `LinkRunner`; `stop` removes all of it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vpnreg.agent.nft import NftRunner

#: Packets per direction of each connection the agent sees (the plugin inspects at most 16 per
#: flow and nDPI decides the VPN protocols within the first few; see docs/gateway.md).
DEFAULT_PACKETS = 16
#: The conntrack mark bit the enforcement table sets on a connection it drops.
BLOCKED_MARK = 0x40000000
#: Next hops for `dup to`: never contacted (the capture link has ARP and ND off).
_DUP_V4 = "192.0.2.1"
_DUP_V6 = "fe80::1"


class LinkRunner(Protocol):
    """The one seam to `ip` (link creation and removal)."""

    def run(self, args: Sequence[str], *, check: bool = True) -> bool:
        """Run ``ip ARGS...``; False if it failed and `check` is False."""


class SubprocessIp:
    """Calls the ip binary; ``prefix`` runs it elsewhere (e.g. ``ip netns exec NS``)."""

    def __init__(self, *, ip: str = "ip", prefix: Sequence[str] = ()) -> None:
        self._argv = [*prefix, ip]

    def run(self, args: Sequence[str], *, check: bool = True) -> bool:
        done = subprocess.run(
            [*self._argv, *args], capture_output=True, text=True, timeout=10, check=False
        )
        if done.returncode != 0 and check:
            what = "ip " + " ".join(args)
            raise CaptureSetupError(f"{what} failed: {done.stderr.strip() or done.returncode}")
        return done.returncode == 0


@dataclass
class FakeIp:
    """Records `ip` calls instead of running them."""

    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, args: Sequence[str], *, check: bool = True) -> bool:
        self.calls.append(tuple(args))
        return True


class CaptureSetupError(RuntimeError):
    """The capture link or table could not be made."""


@dataclass(frozen=True)
class Shard:
    """This process's share of the connections: those whose symmetric hash mod `of` is `index`."""

    index: int = 0
    of: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.of:
            raise ValueError(f"shard {self.index} of {self.of}: need 0 <= shard < shards")


@dataclass(frozen=True)
class ConntrackCapture:
    """The capture table and link of one agent process, as data."""

    interface: str
    packets: int = DEFAULT_PACKETS
    shard: Shard = Shard()

    @property
    def device(self) -> str:
        """The link the agent captures (the copies are transmitted on it)."""
        return f"vpnreg-cap{self.shard.index}"

    @property
    def peer(self) -> str:
        return f"{self.device}p"

    @property
    def tables(self) -> tuple[str, str]:
        # `dup` exists in the ip and ip6 families only, not inet: one table per family
        return (f"ip vpnreg_capture{self.shard.index}", f"ip6 vpnreg_capture{self.shard.index}")

    def render(self) -> str:
        return "".join(
            self._render_table(table, nexthop)
            for table, nexthop in zip(self.tables, (_DUP_V4, _DUP_V6), strict=True)
        )

    def _render_table(self, table: str, nexthop: str) -> str:
        n, dev, peer = self.packets, self.device, self.peer
        shard = (
            [f"\t\tsymhash mod {self.shard.of} != {self.shard.index} return"]
            if self.shard.of > 1
            else []
        )
        lines = [
            f"table {table} {{",
            "\tchain forward {",
            "\t\ttype filter hook forward priority filter - 10; policy accept;",
            # a connection through the interface, in either direction (goto: copied once even
            # when it leaves by the interface it came in by)
            f'\t\tiifname "{self.interface}" goto sample',
            f'\t\toifname "{self.interface}" goto sample',
            "\t}",
            "\tchain sample {",
            *shard,
            f"\t\tct mark and {BLOCKED_MARK:#x} != 0 goto copy",
            f"\t\tct direction original ct original packets <= {n} goto copy",
            f"\t\tct direction reply ct reply packets <= {n} goto copy",
            "\t}",
            "\tchain copy {",
            f'\t\tcounter dup to {nexthop} device "{dev}"',
            "\t}",
            # the copies arrive on the peer: dropped before conntrack and routing see them
            "\tchain sink {",
            "\t\ttype filter hook prerouting priority raw - 100; policy accept;",
            f'\t\tiifname "{peer}" drop',
            "\t}",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def render_stop(self) -> str:
        # `add` makes the `delete` safe when a table is absent
        return "".join(f"add table {t}\ndelete table {t}\n" for t in self.tables)

    def render_start(self) -> str:
        return self.render_stop() + self.render()

    def link_commands(self) -> list[list[str]]:
        """`ip` commands that make the capture link (after `delete_link` of any leftover)."""
        up = ["up", "arp", "off", "mtu", "65535"]
        return [
            ["link", "add", self.device, "type", "veth", "peer", "name", self.peer],
            # no link-local address: the link carries nothing but the copies
            ["link", "set", self.device, "addrgenmode", "none"],
            ["link", "set", self.peer, "addrgenmode", "none"],
            ["link", "set", self.peer, *up],
            ["link", "set", self.device, *up],
        ]

    def delete_link(self) -> list[str]:
        return ["link", "delete", self.device]


class CaptureInstaller:
    """Installs a `ConntrackCapture` in the gateway and removes it again."""

    def __init__(self, capture: ConntrackCapture, *, nft: NftRunner, ip: LinkRunner) -> None:
        self.capture = capture
        self.nft = nft
        self.ip = ip

    def start(self) -> None:
        """Make the link and the table, replacing leftovers of an agent that was killed."""
        self.ip.run(self.capture.delete_link(), check=False)
        for args in self.capture.link_commands():
            self.ip.run(args)
        try:
            self.nft.run(self.capture.render_start())
        except Exception:
            self.ip.run(self.capture.delete_link(), check=False)
            raise

    def stop(self) -> None:
        """Remove the table first (no copy goes to a vanishing link), then the link."""
        try:
            self.nft.run(self.capture.render_stop())
        finally:
            self.ip.run(self.capture.delete_link(), check=False)
