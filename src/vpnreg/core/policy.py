"""The gateway policy: one classified flow, the allowlist and the home prefixes in, a verdict out.

Pure: callers pass the flow, the registration index, the home prefixes, the enforcement mode and the
feed serial; nothing here reads a clock, a file or the network. docs/policy.md holds the truth table
that ``decide`` implements, row by row.
"""

from __future__ import annotations

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
    """One allowlist entry: a registered prefix and, optionally, the only peers it may talk to."""

    registration_id: int
    prefix: Network
    peers: tuple[Network, ...] = ()

    def allows_peer(self, address: Address) -> bool:
        return not self.peers or any(address in peer for peer in self.peers)


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
    TCP and UDP keys.
    """

    local: Address
    remote: Address
    ip_protocol: int
    remote_port: int | None = None

    def __post_init__(self) -> None:
        if self.local.version != self.remote.version:
            raise ValueError(f"block key mixes address families: {self.local}, {self.remote}")
        if not 0 <= self.ip_protocol <= 255:
            raise ValueError(f"IP protocol out of range: {self.ip_protocol}")
        if self.ip_protocol in PORT_PROTOCOLS:
            if self.remote_port is None or not 0 <= self.remote_port <= 65535:
                raise ValueError(f"a TCP/UDP block key needs a port, got {self.remote_port!r}")
        elif self.remote_port is not None:
            raise ValueError(f"protocol {self.ip_protocol} has no ports")

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.local.version

    def __str__(self) -> str:
        proto = _PROTOCOL_NAMES.get(self.ip_protocol, str(self.ip_protocol))
        port = "" if self.remote_port is None else f" port {self.remote_port}"
        return f"{self.local} <-> {self.remote} {proto}{port}"


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
    flow: FlowKey, vpn_protocol: str | None, domestic_side: Address
) -> tuple[BlockKey, ...]:
    """The keys that stop this VPN flow and nothing else between the same two hosts.

    TCP/UDP: both addresses, the protocol and the remote endpoint's port. Any other protocol
    (ESP, AH, GRE, ...): both addresses and the protocol. PPTP: the TCP 1723 control connection
    and its GRE tunnel together, whichever of the two flows was seen.
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
        return (
            BlockKey(local, remote, IPPROTO_TCP, control_port),
            BlockKey(local, remote, IPPROTO_GRE),
        )
    if flow.ip_protocol in PORT_PROTOCOLS:
        return (BlockKey(local, remote, flow.ip_protocol, remote_port),)
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
    unconfirmed: bool = False,
) -> Decision:
    """The verdict for one classified flow (see docs/policy.md for the table).

    `unconfirmed`: the classifier names `vpn_protocol` only on evidence it could not confirm;
    such a flow is passed whatever the allowlist says, and recorded.
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
    mismatch: tuple[Address, Registration] | None = None
    for local in domestic:
        other = flow.dst_ip if local == flow.src_ip else flow.src_ip
        for registration in index.covering(local):
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
                    f"{what}: domestic {local} is in registration {registration.registration_id} "
                    f"({registration.prefix}) {peer_note} ({_serial(feed_serial)})",
                )
            if mismatch is None:
                mismatch = (local, registration)
    action = Action.REPORT if dry_run else Action.BLOCK
    doing = "reported only (dry run)" if dry_run else "blocked"
    if mismatch is not None:
        local, registration = mismatch
        other = flow.dst_ip if local == flow.src_ip else flow.src_ip
        peers = ", ".join(str(p) for p in registration.peers)
        return Decision(
            Verdict.UNREGISTERED,
            action,
            Rule.PEER_NOT_LISTED,
            registration.registration_id,
            feed_serial,
            f"{what}: domestic {local} is in registration {registration.registration_id} "
            f"({registration.prefix}) but peer {other} is not among its peers ({peers}); "
            f"{doing} ({_serial(feed_serial)})",
            block_keys(flow, vpn_protocol, local),
        )
    local = domestic[0]
    return Decision(
        Verdict.UNREGISTERED,
        action,
        Rule.NOT_REGISTERED,
        None,
        feed_serial,
        f"{what}: domestic {local} is in no registration; {doing} ({_serial(feed_serial)})",
        block_keys(flow, vpn_protocol, local),
    )


def lifted_by(registration: Registration) -> Callable[[BlockKey], bool]:
    """A predicate for block keys that ``registration`` now makes registered.

    Either endpoint may carry the registration (both may be domestic); the other must be an allowed
    peer. The agent uses it to remove existing blocks when a registration appears in the feed.
    """

    def lifted(key: BlockKey) -> bool:
        return (key.local in registration.prefix and registration.allows_peer(key.remote)) or (
            key.remote in registration.prefix and registration.allows_peer(key.local)
        )

    return lifted
