"""The gateway policy: one classified flow, the allowlist and the home prefixes in, a verdict out.

Pure: callers pass the flow, the registration index, the home prefixes, the enforcement mode, the
feed serial and the gateway's clock reading; nothing here reads a clock, a file or the network.
docs/policy.md holds the truth table that ``decide`` implements, row by row.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51

#: Protocols whose block key carries the remote port; every other protocol is keyed by the two
#: addresses and the protocol number alone (ESP, AH, GRE, and anything else a classifier names).
PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP})

PPTP = "pptp"
PPTP_CONTROL_PORT = 1723
#: A registration's port range that covers every port of the domestic endpoint (and portless
#: protocols such as ESP and GRE); any other range covers TCP/UDP ports inside it only.
ANY_PORTS = (0, 65535)

_PROTOCOL_NAMES = {
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_GRE: "gre",
    IPPROTO_ESP: "esp",
    IPPROTO_AH: "ah",
}


class Verdict(StrEnum):
    NOT_VPN = "not-vpn"
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    NOT_DOMESTIC = "not-domestic"
    #: VPN-like evidence the agent could not confirm (an nDPI label without the protocol's
    #: two-sided handshake, a TLS+DTLS pair without an SSL VPN's marks): recorded, never blocked.
    UNCONFIRMED = "unconfirmed"


class Action(StrEnum):
    PASS = "pass"  # noqa: S105 (an action, not a password)
    BLOCK = "block"
    REPORT = "report"


class Rule(StrEnum):
    """The row of the truth table that decided; recorded with every verdict."""

    NOT_VPN = "not-vpn"
    UNCONFIRMED = "unconfirmed"
    NO_DOMESTIC_ENDPOINT = "no-domestic-endpoint"
    REGISTERED_ANY_PEER = "registered-any-peer"
    REGISTERED_LISTED_PEER = "registered-listed-peer"
    PEER_NOT_LISTED = "peer-not-listed"
    PROTOCOL_NOT_REGISTERED = "protocol-not-registered"
    NOT_REGISTERED = "not-registered"


@dataclass(frozen=True)
class FlowKey:
    """The five-tuple of a flow as the classifier saw it (source = the side that spoke first)."""

    src_ip: Address
    src_port: int
    dst_ip: Address
    dst_port: int
    ip_protocol: int

    def __post_init__(self) -> None:
        if self.src_ip.version != self.dst_ip.version:
            raise ValueError(f"flow mixes address families: {self.src_ip} -> {self.dst_ip}")


@dataclass(frozen=True)
class Registration:
    """One allowlist entry: a registered prefix and, optionally, the only peers it may talk to,
    the domestic endpoint's ports, the VPN protocols, and the instant it ends (exclusive)."""

    registration_id: int
    prefix: Network
    peers: tuple[Network, ...] = ()
    #: None: no end (tests and tools); the feed always sets one.
    valid_until: dt.datetime | None = None
    ports: tuple[int, int] = ANY_PORTS
    #: VPN protocol names; empty means any.
    protocols: frozenset[str] = frozenset()

    def allows_peer(self, address: Address) -> bool:
        return not self.peers or any(address in peer for peer in self.peers)

    @property
    def any_port(self) -> bool:
        return self.ports == ANY_PORTS

    def holds_at(self, now: dt.datetime) -> bool:
        return self.valid_until is None or now < self.valid_until

    def covers_port(self, ip_protocol: int, port: int | None) -> bool:
        """Whether the domestic endpoint's `port` (None: not known or portless) is covered."""
        if self.any_port:
            return True
        lo, hi = self.ports
        return ip_protocol in PORT_PROTOCOLS and port is not None and lo <= port <= hi

    def allows_protocol(self, vpn_protocol: str | None) -> bool:
        return not self.protocols or (
            vpn_protocol is not None and vpn_protocol.strip().lower() in self.protocols
        )

    def describe(self) -> str:
        """`registration 17 (192.0.2.0/24 ports 1024-2047)`: what an explanation names."""
        ports = "" if self.any_port else f" ports {self.ports[0]}-{self.ports[1]}"
        return f"registration {self.registration_id} ({self.prefix}{ports})"


class RegistrationIndex(Protocol):
    """Anything that finds the registrations whose prefix covers an address."""

    def covering(self, address: Address) -> Sequence[Registration]: ...


class SimpleIndex:
    """A RegistrationIndex by linear search: for tests and small allowlists."""

    def __init__(self, registrations: Iterable[Registration]) -> None:
        # most specific prefix first, then by id: the order `decide` tries registrations in
        self._registrations = sorted(
            registrations, key=lambda r: (-r.prefix.prefixlen, r.registration_id)
        )

    def covering(self, address: Address) -> Sequence[Registration]:
        return [r for r in self._registrations if address in r.prefix]


@dataclass(frozen=True)
class BlockKey:
    """What the gateway drops, in both directions: never more than the VPN flow's own traffic.

    ``local`` is the domestic endpoint, ``remote`` the other one. ``remote_port`` is set exactly for
    TCP and UDP keys. ``local_port`` is set on TCP/UDP keys of a domestic address shared by
    port-ranged registrations (CGNAT): the key then drops that one flow, never a registered
    subscriber behind the same address.
    """

    local: Address
    remote: Address
    ip_protocol: int
    remote_port: int | None = None
    local_port: int | None = None

    def __post_init__(self) -> None:
        if self.local.version != self.remote.version:
            raise ValueError(f"block key mixes address families: {self.local}, {self.remote}")
        if not 0 <= self.ip_protocol <= 255:
            raise ValueError(f"IP protocol out of range: {self.ip_protocol}")
        if self.ip_protocol in PORT_PROTOCOLS:
            if self.remote_port is None or not 0 <= self.remote_port <= 65535:
                raise ValueError(f"a TCP/UDP block key needs a port, got {self.remote_port!r}")
            if self.local_port is not None and not 0 <= self.local_port <= 65535:
                raise ValueError(f"local port out of range: {self.local_port}")
        elif self.remote_port is not None or self.local_port is not None:
            raise ValueError(f"protocol {self.ip_protocol} has no ports")

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.local.version

    def __str__(self) -> str:
        proto = _PROTOCOL_NAMES.get(self.ip_protocol, str(self.ip_protocol))
        port = "" if self.remote_port is None else f" port {self.remote_port}"
        local_port = "" if self.local_port is None else f" local port {self.local_port}"
        return f"{self.local} <-> {self.remote} {proto}{port}{local_port}"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    action: Action
    rule: Rule
    registration_id: int | None
    feed_serial: int | None
    explanation: str
    block_keys: tuple[BlockKey, ...] = ()


def is_vpn(vpn_protocol: str | None) -> bool:
    return vpn_protocol is not None and vpn_protocol.strip().lower() not in {"", "none"}


def block_keys(
    flow: FlowKey, vpn_protocol: str | None, domestic_side: Address, *, shared: bool = False
) -> tuple[BlockKey, ...]:
    """The keys that stop this VPN flow and nothing else between the same two hosts.

    TCP/UDP: both addresses, the protocol and the remote endpoint's port. Any other protocol
    (ESP, AH, GRE, ...): both addresses and the protocol. PPTP: the TCP 1723 control connection
    and its GRE tunnel together, whichever of the two flows was seen.

    `shared`: the domestic address is covered by port-ranged registrations (a CGNAT address):
    TCP/UDP keys also carry the domestic port, so they drop this flow only. A PPTP control key
    whose domestic port was not seen (the GRE flow was) is then left out rather than guessed.
    """
    if domestic_side == flow.src_ip:
        local, remote, remote_port, local_port = (
            flow.src_ip,
            flow.dst_ip,
            flow.dst_port,
            flow.src_port,
        )
    elif domestic_side == flow.dst_ip:
        local, remote, remote_port, local_port = (
            flow.dst_ip,
            flow.src_ip,
            flow.src_port,
            flow.dst_port,
        )
    else:
        raise ValueError(f"{domestic_side} is not an endpoint of the flow")
    if vpn_protocol is not None and vpn_protocol.strip().lower() == PPTP:
        # The control connection's port on the remote side is 1723 unless the domestic host is the
        # PPTP server; then the remote side's port is the client's (seen only on the TCP flow).
        control_port = PPTP_CONTROL_PORT
        if (
            flow.ip_protocol == IPPROTO_TCP
            and local_port == PPTP_CONTROL_PORT
            and remote_port != PPTP_CONTROL_PORT
        ):
            control_port = remote_port
        gre = BlockKey(local, remote, IPPROTO_GRE)
        if not shared:
            return (BlockKey(local, remote, IPPROTO_TCP, control_port), gre)
        if flow.ip_protocol != IPPROTO_TCP:
            return (gre,)
        return (BlockKey(local, remote, IPPROTO_TCP, control_port, local_port), gre)
    if flow.ip_protocol in PORT_PROTOCOLS:
        return (
            BlockKey(local, remote, flow.ip_protocol, remote_port, local_port if shared else None),
        )
    return (BlockKey(local, remote, flow.ip_protocol),)


def _describe(flow: FlowKey, vpn_protocol: str | None) -> str:
    proto = _PROTOCOL_NAMES.get(flow.ip_protocol, f"ip-proto-{flow.ip_protocol}")
    if flow.ip_protocol in PORT_PROTOCOLS:
        ends = f"{_endpoint(flow.src_ip, flow.src_port)} -> {_endpoint(flow.dst_ip, flow.dst_port)}"
    else:
        ends = f"{flow.src_ip} -> {flow.dst_ip}"
    return f"{proto} {ends} ({vpn_protocol or 'not a VPN'})"


def _endpoint(address: Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _serial(feed_serial: int | None) -> str:
    return "no feed" if feed_serial is None else f"feed serial {feed_serial}"


def decide(
    *,
    flow: FlowKey,
    vpn_protocol: str | None,
    index: RegistrationIndex,
    home: Sequence[Network],
    dry_run: bool,
    feed_serial: int | None,
    now: dt.datetime,
    unconfirmed: bool = False,
) -> Decision:
    """The verdict for one classified flow (see docs/policy.md for the table).

    `now`: the gateway's own clock; a registration registers a flow only before its end, even
    when the feed is stale. `unconfirmed`: the classifier names `vpn_protocol` only on evidence it
    could not confirm; such a flow is passed whatever the allowlist says, and recorded.
    """
    what = _describe(flow, vpn_protocol)
    if not is_vpn(vpn_protocol):
        return Decision(
            Verdict.NOT_VPN, Action.PASS, Rule.NOT_VPN, None, feed_serial, f"{what}: not a VPN"
        )
    if unconfirmed:
        return Decision(
            Verdict.UNCONFIRMED,
            Action.PASS,
            Rule.UNCONFIRMED,
            None,
            feed_serial,
            f"{what}: unconfirmed, passed and recorded, never blocked ({_serial(feed_serial)})",
        )
    # source first: when both endpoints are home and neither is registered, the source is blamed
    domestic = [a for a in (flow.src_ip, flow.dst_ip) if any(a in net for net in home)]
    if not domestic:
        return Decision(
            Verdict.NOT_DOMESTIC,
            Action.PASS,
            Rule.NO_DOMESTIC_ENDPOINT,
            None,
            feed_serial,
            f"{what}: neither endpoint is in a home prefix; passed and counted "
            f"({_serial(feed_serial)})",
        )
    peer_mismatch: tuple[Address, Registration] | None = None
    protocol_mismatch: tuple[Address, Registration] | None = None
    shared: dict[Address, bool] = {}
    ended: list[Registration] = []
    for local in domestic:
        other = flow.dst_ip if local == flow.src_ip else flow.src_ip
        local_port = flow.src_port if local == flow.src_ip else flow.dst_port
        covering = index.covering(local)
        shared[local] = any(not r.any_port for r in covering)
        for registration in covering:
            if not registration.holds_at(now):
                ended.append(registration)
                continue
            if not registration.covers_port(flow.ip_protocol, local_port):
                continue
            if not registration.allows_protocol(vpn_protocol):
                if protocol_mismatch is None:
                    protocol_mismatch = (local, registration)
                continue
            if registration.allows_peer(other):
                rule = (
                    Rule.REGISTERED_LISTED_PEER if registration.peers else Rule.REGISTERED_ANY_PEER
                )
                peer_note = (
                    f"and peer {other} is listed" if registration.peers else "which lists no peers"
                )
                return Decision(
                    Verdict.REGISTERED,
                    Action.PASS,
                    rule,
                    registration.registration_id,
                    feed_serial,
                    f"{what}: domestic {local} is in {registration.describe()} {peer_note} "
                    f"({_serial(feed_serial)})",
                )
            if peer_mismatch is None:
                peer_mismatch = (local, registration)
    action = Action.REPORT if dry_run else Action.BLOCK
    doing = "reported only (dry run)" if dry_run else "blocked"
    if peer_mismatch is not None:
        local, registration = peer_mismatch
        other = flow.dst_ip if local == flow.src_ip else flow.src_ip
        peers = ", ".join(str(p) for p in registration.peers)
        return Decision(
            Verdict.UNREGISTERED,
            action,
            Rule.PEER_NOT_LISTED,
            registration.registration_id,
            feed_serial,
            f"{what}: domestic {local} is in {registration.describe()} but peer {other} is not "
            f"among its peers ({peers}); {doing} ({_serial(feed_serial)})",
            block_keys(flow, vpn_protocol, local, shared=shared[local]),
        )
    if protocol_mismatch is not None:
        local, registration = protocol_mismatch
        protocols = ", ".join(sorted(registration.protocols))
        return Decision(
            Verdict.UNREGISTERED,
            action,
            Rule.PROTOCOL_NOT_REGISTERED,
            registration.registration_id,
            feed_serial,
            f"{what}: domestic {local} is in {registration.describe()} but not for "
            f"{vpn_protocol} (it allows {protocols}); {doing} ({_serial(feed_serial)})",
            block_keys(flow, vpn_protocol, local, shared=shared[local]),
        )
    local = domestic[0]
    note = ""
    if ended:
        last = max(ended, key=lambda r: (r.valid_until or now, r.registration_id))
        until = (last.valid_until or now).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        note = f" (registration {last.registration_id} ended {until})"
    elif shared[local]:
        note = " for this port"
    return Decision(
        Verdict.UNREGISTERED,
        action,
        Rule.NOT_REGISTERED,
        None,
        feed_serial,
        f"{what}: domestic {local} is in no registration{note}; {doing} ({_serial(feed_serial)})",
        block_keys(flow, vpn_protocol, local, shared=shared[local]),
    )


def lifted_by(registration: Registration) -> Callable[[BlockKey], bool]:
    """A predicate for block keys that ``registration`` now makes registered.

    Either endpoint may carry the registration (both may be domestic); the other must be an allowed
    peer, and a port-ranged registration must cover that endpoint's port. The agent uses it to
    remove existing blocks when a registration appears in the feed. It errs towards lifting: a key
    without the domestic port (made before the address was shared) is lifted by any range, and
    protocols and end times are not looked at; a flow lifted wrongly is blocked again when seen.
    """

    def covers(port: int | None, key: BlockKey) -> bool:
        if registration.any_port:
            return True
        if key.ip_protocol not in PORT_PROTOCOLS:
            return False
        lo, hi = registration.ports
        return port is None or lo <= port <= hi

    def lifted(key: BlockKey) -> bool:
        return (
            key.local in registration.prefix
            and registration.allows_peer(key.remote)
            and covers(key.local_port, key)
        ) or (
            key.remote in registration.prefix
            and registration.allows_peer(key.local)
            and covers(key.remote_port, key)
        )

    return lifted
