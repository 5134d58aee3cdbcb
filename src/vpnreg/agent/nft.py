"""The nftables back end: rulesets rendered as text from data, applied through one runner.

The agent owns exactly one table, ``table inet vpnreg``, and touches nothing else. Blocked keys live
in six sets (IPv4/IPv6 x without a port, with the remote port, with the remote and the domestic
port) with a timeout; a forward-hook chain with policy accept drops packets whose key is in a set,
in both directions. The keys with the domestic port are those of a CGNAT address shared by
port-ranged registrations: they drop one subscriber's flow, never another's on the same address.
Every change is one ``nft -f -`` script, which nftables applies as one transaction.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vpnreg.agent.enforce import DEFAULT_TIMEOUT_S, ActiveBlock, KeyPredicate
from vpnreg.core.policy import PORT_PROTOCOLS, BlockKey

# nft prints protocols by name unless told `-p`; these cover what it prints for our keys anyway.
_PROTOCOL_NUMBERS = {
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmp": 1,
    "ipv6-icmp": 58,
}


class NftError(RuntimeError):
    """nft refused a script or a command; carries nft's own message."""

    def __init__(self, what: str, returncode: int, stderr: str) -> None:
        super().__init__(f"{what} failed (exit {returncode}): {stderr.strip() or 'no message'}")
        self.returncode = returncode
        self.stderr = stderr


class NftRunner(Protocol):
    """The one seam to nftables."""

    def run(self, script: str) -> None:
        """Apply a script as with ``nft -f -`` (one transaction)."""

    def query(self, args: Sequence[str]) -> str:
        """Run ``nft -j -p ARGS...`` and return its JSON output."""


class SubprocessNft:
    """Calls the nft binary; ``prefix`` runs it elsewhere (e.g. ``ip netns exec NS``)."""

    def __init__(
        self, *, nft: str = "nft", prefix: Sequence[str] = (), timeout_s: float = 10.0
    ) -> None:
        self._argv = [*prefix, nft]
        self._timeout_s = timeout_s

    def run(self, script: str) -> None:
        self._call(["-f", "-"], script, "nft -f -")

    def query(self, args: Sequence[str]) -> str:
        return self._call(["-j", "-p", *args], None, "nft -j " + " ".join(args))

    def _call(self, args: list[str], stdin: str | None, what: str) -> str:
        done = subprocess.run(
            [*self._argv, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self._timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise NftError(what, done.returncode, done.stderr)
        return done.stdout


@dataclass
class FakeNft:
    """Records scripts instead of running them; answers queries from ``listing``."""

    scripts: list[str] = field(default_factory=list)
    queries: list[tuple[str, ...]] = field(default_factory=list)
    listing: str = '{"nftables": []}'
    fail_with: NftError | None = None

    def run(self, script: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.scripts.append(script)

    def query(self, args: Sequence[str]) -> str:
        self.queries.append(tuple(args))
        return self.listing


@dataclass(frozen=True)
class NftSet:
    name: str
    family: int  # 4 or 6
    with_port: bool
    #: Also keyed by the domestic endpoint's port (a shared CGNAT address).
    with_local_port: bool = False

    @property
    def type(self) -> str:
        addr = "ipv4_addr" if self.family == 4 else "ipv6_addr"
        parts = [addr, addr, "inet_proto"] + (["inet_service"] if self.with_port else [])
        parts += ["inet_service"] if self.with_local_port else []
        return " . ".join(parts)

    def match_rules(self, mark: int | None = None) -> tuple[str, str]:
        """The two drop rules: domestic side as source, then as destination. With `mark`, a
        dropped packet's connection gets that conntrack mark bit (see vpnreg.agent.ctcapture)."""
        ip = "ip" if self.family == 4 else "ip6"
        out = f"{ip} saddr . {ip} daddr . meta l4proto"
        back = f"{ip} daddr . {ip} saddr . meta l4proto"
        if self.with_port:
            out += " . th dport"
            back += " . th sport"
        if self.with_local_port:
            out += " . th sport"
            back += " . th dport"
        verdict = (
            "counter drop" if mark is None else f"ct mark set ct mark or {mark:#x} counter drop"
        )
        return (f"{out} @{self.name} {verdict}", f"{back} @{self.name} {verdict}")


SETS = (
    NftSet("v4_port", 4, True),
    NftSet("v4_addr", 4, False),
    NftSet("v6_port", 6, True),
    NftSet("v6_addr", 6, False),
    NftSet("v4_lport", 4, True, True),
    NftSet("v6_lport", 6, True, True),
)


def set_for(key: BlockKey) -> NftSet:
    with_port = key.ip_protocol in PORT_PROTOCOLS
    with_local_port = key.local_port is not None
    return next(
        s
        for s in SETS
        if s.family == key.family
        and s.with_port == with_port
        and s.with_local_port == with_local_port
    )


def element(key: BlockKey) -> str:
    parts = [str(key.local), str(key.remote), str(key.ip_protocol)]
    if key.remote_port is not None:
        parts.append(str(key.remote_port))
    if key.local_port is not None:
        parts.append(str(key.local_port))
    return " . ".join(parts)


@dataclass(frozen=True)
class NftTable:
    """The agent's table as data; ``render*`` turn it into nft scripts."""

    name: str = "vpnreg"
    family: str = "inet"
    chain: str = "forward"
    priority: str = "filter"
    timeout_s: int = DEFAULT_TIMEOUT_S
    sets: tuple[NftSet, ...] = SETS
    #: The conntrack mark bit set on dropped connections (conntrack capture), or None.
    blocked_mark: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.family} {self.name}"

    def render(self) -> str:
        """The whole table, empty sets included (no `flush ruleset`: other tables are not ours)."""
        lines = [f"table {self.ref} {{"]
        for s in self.sets:
            lines.append(
                f"\tset {s.name} {{ type {s.type}; flags timeout; timeout {self.timeout_s}s; }}"
            )
        lines.append(f"\tchain {self.chain} {{")
        lines.append(f"\t\ttype filter hook forward priority {self.priority}; policy accept;")
        lines.extend(f"\t\t{rule}" for s in self.sets for rule in s.match_rules(self.blocked_mark))
        if self.blocked_mark is not None:
            # a packet that got here was not dropped: its connection is no longer blocked
            bit, keep = self.blocked_mark, 0xFFFFFFFF & ~self.blocked_mark
            lines.append(f"\t\tct mark and {bit:#x} != 0 ct mark set ct mark and {keep:#x}")
        lines.append("\t}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render_start(self) -> str:
        # `add` makes the `delete` safe when the table is absent; the three run as one transaction,
        # so the forward hook is never without the table in between.
        return f"add table {self.ref}\ndelete table {self.ref}\n" + self.render()

    def render_stop(self) -> str:
        return f"add table {self.ref}\ndelete table {self.ref}\n"

    def render_block(self, keys: Iterable[BlockKey]) -> str:
        # add/delete/add: a key already present gets a fresh timeout, a new one is simply added,
        # and nothing fails whichever state the set is in.
        lines = []
        for key in dict.fromkeys(keys):
            target = f"{self.ref} {set_for(key).name} {{ {element(key)} }}"
            lines += [f"add element {target}", f"delete element {target}", f"add element {target}"]
        return "".join(line + "\n" for line in lines)

    def render_unblock(self, keys: Iterable[BlockKey]) -> str:
        # add then delete: removing a key that expired meanwhile must not abort the transaction
        lines = []
        for key in dict.fromkeys(keys):
            target = f"{self.ref} {set_for(key).name} {{ {element(key)} }}"
            lines += [f"add element {target}", f"delete element {target}"]
        return "".join(line + "\n" for line in lines)

    def parse_active(self, listing: str) -> tuple[ActiveBlock, ...]:
        """Active blocks from ``nft -j -p list table`` output."""
        document: Any = json.loads(listing)
        by_name = {s.name: s for s in self.sets}
        found: list[ActiveBlock] = []
        for item in document.get("nftables", []):
            body = item.get("set") if isinstance(item, dict) else None
            if not body or body.get("table") != self.name or body.get("name") not in by_name:
                continue
            for entry in body.get("elem", []):
                found.append(_active_block(entry, self.timeout_s))
        return tuple(found)


def _active_block(entry: Any, default_timeout: int) -> ActiveBlock:
    if isinstance(entry, dict) and "elem" in entry:
        expires = entry["elem"].get("expires", default_timeout)
        value = entry["elem"]["val"]
    else:
        expires, value = default_timeout, entry
    parts = value["concat"]
    proto = parts[2] if isinstance(parts[2], int) else _PROTOCOL_NUMBERS[parts[2]]
    port = int(parts[3]) if len(parts) > 3 else None
    local_port = int(parts[4]) if len(parts) > 4 else None
    key = BlockKey(
        ipaddress.ip_address(parts[0]), ipaddress.ip_address(parts[1]), proto, port, local_port
    )
    return ActiveBlock(key, float(expires))


class NftablesBackend:
    """EnforcementBackend on nftables, through one NftRunner."""

    def __init__(
        self,
        runner: NftRunner,
        *,
        timeout: int = DEFAULT_TIMEOUT_S,
        name: str = "vpnreg",
        blocked_mark: int | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.runner = runner
        self.table = NftTable(name=name, timeout_s=timeout, blocked_mark=blocked_mark)

    def start(self) -> None:
        self.runner.run(self.table.render_start())

    def block(self, keys: Iterable[BlockKey]) -> None:
        script = self.table.render_block(keys)
        if script:
            self.runner.run(script)

    def unblock(self, keys: Iterable[BlockKey]) -> None:
        script = self.table.render_unblock(keys)
        if script:
            self.runner.run(script)

    def unblock_matching(self, predicate: KeyPredicate) -> tuple[BlockKey, ...]:
        removed = tuple(a.key for a in self.active_blocks() if predicate(a.key))
        self.unblock(removed)
        return removed

    def active_blocks(self) -> tuple[ActiveBlock, ...]:
        listing = self.runner.query(["list", "table", self.table.family, self.table.name])
        return self.table.parse_active(listing)

    def stop(self) -> None:
        self.runner.run(self.table.render_stop())
