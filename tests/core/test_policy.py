"""The gateway policy, row by row as docs/policy.md writes it, and the block key per protocol."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, replace

import pytest

from vpnreg.core.policy import (
    Action,
    BlockKey,
    FlowKey,
    Registration,
    Rule,
    SimpleIndex,
    Verdict,
    block_keys,
    decide,
    lifted_by,
)

ip = ipaddress.ip_address
net = ipaddress.ip_network

# Two home prefixes (so that both endpoints can be domestic) and one foreign range.
HOME = (net("198.51.100.0/24"), net("192.0.2.0/24"), net("2001:db8:a::/48"))
A = "198.51.100.10"  # home
A2 = "198.51.100.20"  # home, same prefix as A
C = "192.0.2.30"  # home, the other prefix
F = "203.0.113.40"  # foreign
F2 = "203.0.113.50"  # foreign
A6 = "2001:db8:a::10"  # home
F6 = "2001:db8:f::40"  # foreign
#: The gateway's clock in every decision; registrations end at END unless a row says otherwise.
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 1, 19, 0, 0, tzinfo=dt.UTC)


def udp(src: str, dst: str, sport: int = 40000, dport: int = 51820) -> FlowKey:
    return FlowKey(ip(src), sport, ip(dst), dport, 17)


def reg(rid: int, prefix: str, *peers: str) -> Registration:
    return Registration(rid, net(prefix), tuple(net(p) for p in peers), valid_until=END)


def ranged(rid: int, prefix: str, lo: int, hi: int, *protocols: str) -> Registration:
    """A CGNAT port block (RFC 7422) of `prefix`, optionally for some protocols only."""
    return replace(reg(rid, prefix), ports=(lo, hi), protocols=frozenset(protocols))


def only(rid: int, prefix: str, *protocols: str) -> Registration:
    return replace(reg(rid, prefix), protocols=frozenset(protocols))


def ending(rid: int, prefix: str, until: dt.datetime) -> Registration:
    return replace(reg(rid, prefix), valid_until=until)


@dataclass(frozen=True)
class Row:
    id: str
    flow: FlowKey
    registrations: tuple[Registration, ...]
    verdict: Verdict
    rule: Rule
    registration_id: int | None = None
    local: str | None = None  # the domestic side the block key names (unregistered rows only)
    vpn: str | None = "wireguard"
    #: The domestic address is shared by port-ranged registrations: keys carry the local port.
    shared: bool = False


ROWS = [
    Row("not-vpn:none", udp(A, F), (), Verdict.NOT_VPN, Rule.NOT_VPN, vpn=None),
    Row("not-vpn:string-none", udp(A, F), (), Verdict.NOT_VPN, Rule.NOT_VPN, vpn="none"),
    Row("not-vpn:even-if-unregistered-home", udp(A, C), (), Verdict.NOT_VPN, Rule.NOT_VPN, vpn=""),
    Row("no-home:both-foreign", udp(F, F2), (), Verdict.NOT_DOMESTIC, Rule.NO_DOMESTIC_ENDPOINT),
    Row(
        "no-home:foreign-registered-prefix-is-irrelevant",
        udp(F, F2),
        (reg(1, "203.0.113.0/24"),),
        Verdict.NOT_DOMESTIC,
        Rule.NO_DOMESTIC_ENDPOINT,
    ),
    Row("src-home:unregistered", udp(A, F), (), Verdict.UNREGISTERED, Rule.NOT_REGISTERED, local=A),
    Row("dst-home:unregistered", udp(F, A), (), Verdict.UNREGISTERED, Rule.NOT_REGISTERED, local=A),
    Row(
        "src-home:other-prefix-registered",
        udp(A, F),
        (reg(1, "192.0.2.0/24"),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
    ),
    Row(
        "src-home:registered-no-peers",
        udp(A, F),
        (reg(7, "198.51.100.0/26"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        7,
    ),
    Row(
        "dst-home:registered-no-peers",
        udp(F, A),
        (reg(7, "198.51.100.0/26"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        7,
    ),
    Row(
        "src-home:registered-peer-listed",
        udp(A, F),
        (reg(8, "198.51.100.0/24", "203.0.113.32/27"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_LISTED_PEER,
        8,
    ),
    Row(
        "dst-home:registered-peer-listed",
        udp(F, A),
        (reg(8, "198.51.100.0/24", "192.0.2.0/24", "203.0.113.40/32"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_LISTED_PEER,
        8,
    ),
    Row(
        "src-home:registered-peer-not-listed",
        udp(A, F),
        (reg(9, "198.51.100.0/24", "203.0.113.0/28"),),
        Verdict.UNREGISTERED,
        Rule.PEER_NOT_LISTED,
        9,
        local=A,
    ),
    Row(
        "dst-home:registered-peer-not-listed",
        udp(F, A),
        (reg(9, "198.51.100.0/24", "192.0.2.0/24"),),
        Verdict.UNREGISTERED,
        Rule.PEER_NOT_LISTED,
        9,
        local=A,
    ),
    Row(
        "only-the-foreign-endpoint-registered",
        udp(A, F),
        (reg(3, "203.0.113.0/24"),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
    ),
    Row(
        "nested:specific-peer-miss-broader-any-peer",
        udp(A, F),
        (reg(10, "198.51.100.0/28", "192.0.2.0/24"), reg(11, "198.51.100.0/24")),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        11,
    ),
    Row(
        "nested:both-peer-miss-names-most-specific",
        udp(A, F),
        (reg(11, "198.51.100.0/24", "192.0.2.0/24"), reg(10, "198.51.100.0/28", "192.0.2.0/25")),
        Verdict.UNREGISTERED,
        Rule.PEER_NOT_LISTED,
        10,
        local=A,
    ),
    Row(
        "both-home:unregistered-blames-source",
        udp(A, C),
        (),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
    ),
    Row(
        "both-home:unregistered-blames-source-reversed",
        udp(C, A),
        (),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=C,
    ),
    Row(
        "both-home:same-prefix-unregistered",
        udp(A2, A),
        (),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A2,
    ),
    Row(
        "both-home:src-registered",
        udp(A, C),
        (reg(20, "198.51.100.0/24"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        20,
    ),
    Row(
        "both-home:dst-registered",
        udp(A, C),
        (reg(21, "192.0.2.0/24"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        21,
    ),
    Row(
        "both-home:dst-registered-peer-listed",
        udp(A, C),
        (reg(22, "192.0.2.0/24", "198.51.100.0/25"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_LISTED_PEER,
        22,
    ),
    Row(
        "both-home:src-peer-miss-dst-carries",
        udp(A, C),
        (reg(23, "198.51.100.0/24", "203.0.113.0/24"), reg(24, "192.0.2.0/24", A + "/32")),
        Verdict.REGISTERED,
        Rule.REGISTERED_LISTED_PEER,
        24,
    ),
    Row(
        "both-home:src-peer-miss-dst-unregistered",
        udp(A, C),
        (reg(25, "198.51.100.0/24", "203.0.113.0/24"),),
        Verdict.UNREGISTERED,
        Rule.PEER_NOT_LISTED,
        25,
        local=A,
    ),
    Row(
        "both-home:dst-peer-miss-blames-registered-dst",
        udp(A, C),
        (reg(26, "192.0.2.0/24", "203.0.113.0/24"),),
        Verdict.UNREGISTERED,
        Rule.PEER_NOT_LISTED,
        26,
        local=C,
    ),
    Row(
        "both-home:both-peer-miss",
        udp(A, C),
        (reg(27, "198.51.100.0/24", "203.0.113.0/24"), reg(28, "192.0.2.0/24", F2 + "/32")),
        Verdict.UNREGISTERED,
        Rule.PEER_NOT_LISTED,
        27,
        local=A,
    ),
    Row("v6:unregistered", udp(A6, F6), (), Verdict.UNREGISTERED, Rule.NOT_REGISTERED, local=A6),
    Row(
        "v6:registered-peer-listed",
        udp(F6, A6),
        (reg(30, "2001:db8:a::/56", "2001:db8:f::/48"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_LISTED_PEER,
        30,
    ),
    Row(
        "v6:v4-registration-does-not-cover",
        udp(A6, F6),
        (reg(31, "198.51.100.0/24"),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A6,
    ),
    # -- expiry (the gateway's clock; the end is exclusive) --
    Row(
        "expiry:before-the-end",
        udp(A, F),
        (ending(40, "198.51.100.0/24", NOW + dt.timedelta(seconds=1)),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        40,
    ),
    Row(
        "expiry:at-the-end",
        udp(A, F),
        (ending(41, "198.51.100.0/24", NOW),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
    ),
    Row(
        "expiry:ended-one-another-holds",
        udp(A, F),
        (ending(42, "198.51.100.0/24", NOW), reg(43, "198.51.100.0/24")),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        43,
    ),
    # -- port ranges (CGNAT port blocks): the domestic endpoint's port --
    Row(
        "ports:domestic-client-port-inside",
        udp(A, F, sport=1500),
        (ranged(50, A + "/32", 1024, 2047),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        50,
    ),
    Row(
        "ports:domestic-server-port-inside",
        udp(F, A, sport=51820, dport=2047),
        (ranged(50, A + "/32", 1024, 2047),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        50,
    ),
    Row(
        "ports:domestic-port-outside",
        udp(A, F, sport=2048),
        (ranged(50, A + "/32", 1024, 2047),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
        shared=True,
    ),
    Row(
        "ports:the-remote-port-does-not-count",
        udp(A, F, sport=40000, dport=1500),
        (ranged(50, A + "/32", 1024, 2047),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
        shared=True,
    ),
    Row(
        "ports:two-subscribers-share-the-address",
        udp(A, F, sport=3000),
        (ranged(50, A + "/32", 1024, 2047), ranged(51, A + "/32", 2048, 3071)),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        51,
    ),
    Row(
        "ports:a-range-never-covers-esp",
        FlowKey(ip(A), 0, ip(F), 0, 50),
        (ranged(50, A + "/32", 0, 65534),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
        vpn="ipsec",
        shared=True,
    ),
    Row(
        "ports:any-port-covers-esp",
        FlowKey(ip(A), 0, ip(F), 0, 50),
        (reg(52, A + "/32"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        52,
        vpn="ipsec",
    ),
    Row(
        "ports:inside-but-peer-not-listed",
        udp(A, F, sport=1500),
        (replace(ranged(53, A + "/32", 1024, 2047), peers=(net("192.0.2.0/24"),)),),
        Verdict.UNREGISTERED,
        Rule.PEER_NOT_LISTED,
        53,
        local=A,
        shared=True,
    ),
    # -- protocols --
    Row(
        "protocol:listed",
        udp(A, F),
        (only(60, "198.51.100.0/24", "openvpn", "wireguard"),),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        60,
    ),
    Row(
        "protocol:not-listed",
        udp(A, F),
        (only(61, "198.51.100.0/24", "openvpn"),),
        Verdict.UNREGISTERED,
        Rule.PROTOCOL_NOT_REGISTERED,
        61,
        local=A,
    ),
    Row(
        "protocol:not-listed-another-registration-allows-it",
        udp(A, F),
        (only(61, "198.51.100.0/24", "openvpn"), only(62, "198.51.100.0/24", "wireguard")),
        Verdict.REGISTERED,
        Rule.REGISTERED_ANY_PEER,
        62,
    ),
    Row(
        "protocol:not-listed-port-outside-is-not-registered",
        udp(A, F, sport=5000),
        (ranged(63, A + "/32", 1024, 2047, "openvpn"),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
        shared=True,
    ),
    Row(
        "protocol:not-listed-port-inside",
        udp(A, F, sport=1500),
        (ranged(63, A + "/32", 1024, 2047, "openvpn"),),
        Verdict.UNREGISTERED,
        Rule.PROTOCOL_NOT_REGISTERED,
        63,
        local=A,
        shared=True,
    ),
    Row(
        "protocol:not-listed-and-ended-is-not-registered",
        udp(A, F),
        (replace(only(64, "198.51.100.0/24", "openvpn"), valid_until=NOW),),
        Verdict.UNREGISTERED,
        Rule.NOT_REGISTERED,
        local=A,
    ),
]


@pytest.mark.parametrize("dry_run", [False, True], ids=["enforce", "dry-run"])
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_truth_table(row: Row, dry_run: bool) -> None:
    d = decide(
        flow=row.flow,
        vpn_protocol=row.vpn,
        index=SimpleIndex(row.registrations),
        home=HOME,
        dry_run=dry_run,
        feed_serial=42,
        now=NOW,
    )
    assert (d.verdict, d.rule, d.registration_id, d.feed_serial) == (
        row.verdict,
        row.rule,
        row.registration_id,
        42,
    )
    if row.verdict is Verdict.UNREGISTERED:
        assert d.action is (Action.REPORT if dry_run else Action.BLOCK)
        assert row.local is not None
        assert d.block_keys == block_keys(row.flow, row.vpn, ip(row.local), shared=row.shared)
        assert all(
            (k.local_port is not None) is (row.shared and k.ip_protocol in (6, 17))
            for k in d.block_keys
        )
        assert all(k.local == ip(row.local) for k in d.block_keys)
        assert ("dry run" in d.explanation) is dry_run
    else:
        assert d.action is Action.PASS
        assert d.block_keys == ()
    assert "feed serial 42" in d.explanation or row.verdict is Verdict.NOT_VPN
    if row.registration_id is not None:
        assert f"registration {row.registration_id}" in d.explanation


def test_explanation_without_feed() -> None:
    d = decide(
        flow=udp(A, F), vpn_protocol="openvpn", index=SimpleIndex([]), home=HOME,
        dry_run=False, feed_serial=None, now=NOW,
    )  # fmt: skip
    assert d.feed_serial is None
    assert "no feed" in d.explanation
    assert "198.51.100.10:40000 -> 203.0.113.40:51820" in d.explanation
    assert "openvpn" in d.explanation


def test_v6_explanation_brackets_addresses() -> None:
    d = decide(
        flow=udp(A6, F6), vpn_protocol="wireguard", index=SimpleIndex([]), home=HOME,
        dry_run=False, feed_serial=1, now=NOW,
    )  # fmt: skip
    assert "[2001:db8:a::10]:40000 -> [2001:db8:f::40]:51820" in d.explanation


# --- block keys per protocol --------------------------------------------------------------------


@dataclass(frozen=True)
class KeyCase:
    id: str
    flow: FlowKey
    vpn: str
    domestic: str
    keys: tuple[BlockKey, ...]


def key(local: str, remote: str, proto: int, port: int | None = None) -> BlockKey:
    return BlockKey(ip(local), ip(remote), proto, port)


KEY_CASES = [
    KeyCase(
        "udp:domestic-client", udp(A, F, 40000, 51820), "wireguard", A, (key(A, F, 17, 51820),)
    ),
    KeyCase(
        "udp:domestic-server", udp(F, A, 40000, 51820), "wireguard", A, (key(A, F, 17, 40000),)
    ),
    KeyCase(
        "tcp:domestic-client",
        FlowKey(ip(A), 50000, ip(F), 443, 6),
        "openvpn",
        A,
        (key(A, F, 6, 443),),
    ),
    KeyCase(
        "tcp:domestic-is-destination",
        FlowKey(ip(F), 443, ip(A), 50000, 6),
        "openvpn",
        A,
        (key(A, F, 6, 443),),
    ),
    KeyCase("esp", FlowKey(ip(A), 0, ip(F), 0, 50), "ipsec", A, (key(A, F, 50),)),
    KeyCase("esp:reversed", FlowKey(ip(F), 0, ip(A), 0, 50), "ipsec", A, (key(A, F, 50),)),
    KeyCase("ah", FlowKey(ip(A), 0, ip(F), 0, 51), "ipsec", A, (key(A, F, 51),)),
    KeyCase("gre", FlowKey(ip(A), 0, ip(F), 0, 47), "gre", A, (key(A, F, 47),)),
    KeyCase("other-protocol", FlowKey(ip(A), 0, ip(F), 0, 4), "ipip", A, (key(A, F, 4),)),
    KeyCase(
        "pptp:control-flow",
        FlowKey(ip(A), 51000, ip(F), 1723, 6),
        "pptp",
        A,
        (key(A, F, 6, 1723), key(A, F, 47)),
    ),
    KeyCase(
        "pptp:gre-flow",
        FlowKey(ip(F), 0, ip(A), 0, 47),
        "PPTP",
        A,
        (key(A, F, 6, 1723), key(A, F, 47)),
    ),
    KeyCase(
        "pptp:domestic-server",
        FlowKey(ip(F), 51000, ip(A), 1723, 6),
        "pptp",
        A,
        (key(A, F, 6, 51000), key(A, F, 47)),
    ),
    KeyCase(
        "v6:udp",
        udp(A6, F6, 1194, 1194),
        "openvpn",
        A6,
        (key(A6, F6, 17, 1194),),
    ),
    KeyCase(
        "both-home:the-named-side-is-local",
        udp(A, C, 40000, 51820),
        "wireguard",
        C,
        (key(C, A, 17, 40000),),
    ),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=[c.id for c in KEY_CASES])
def test_block_keys_per_protocol(case: KeyCase) -> None:
    assert block_keys(case.flow, case.vpn, ip(case.domestic)) == case.keys


def test_block_keys_refuse_a_stranger() -> None:
    with pytest.raises(ValueError, match="not an endpoint"):
        block_keys(udp(A, F), "wireguard", ip(C))


def test_decide_blocks_pptp_as_a_pair() -> None:
    d = decide(
        flow=FlowKey(ip(A), 51000, ip(F), 1723, 6), vpn_protocol="pptp", index=SimpleIndex([]),
        home=HOME, dry_run=False, feed_serial=3, now=NOW,
    )  # fmt: skip
    assert d.block_keys == (key(A, F, 6, 1723), key(A, F, 47))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((ip(A), ip(F6), 17, 1), "families", id="mixed-families"),
        pytest.param((ip(A), ip(F), 17, None), "needs a port", id="udp-without-port"),
        pytest.param((ip(A), ip(F), 6, 70000), "needs a port", id="port-out-of-range"),
        pytest.param((ip(A), ip(F), 50, 500), "no ports", id="esp-with-port"),
        pytest.param((ip(A), ip(F), 256, None), "out of range", id="protocol-out-of-range"),
    ],
)
def test_block_key_validation(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BlockKey(*args)  # type: ignore[arg-type]


def test_block_key_family_and_text() -> None:
    assert key(A, F, 17, 51820).family == 4
    assert key(A6, F6, 50).family == 6
    assert str(key(A, F, 17, 51820)) == "198.51.100.10 <-> 203.0.113.40 udp port 51820"
    assert str(key(A, F, 47)) == "198.51.100.10 <-> 203.0.113.40 gre"


def test_flow_key_refuses_mixed_families() -> None:
    with pytest.raises(ValueError, match="mixes"):
        FlowKey(ip(A), 1, ip(F6), 2, 17)


def test_simple_index_orders_most_specific_first() -> None:
    idx = SimpleIndex(
        [reg(1, "198.51.100.0/24"), reg(2, "198.51.100.0/28"), reg(3, "192.0.2.0/24")]
    )
    assert [r.registration_id for r in idx.covering(ip(A))] == [2, 1]
    assert [r.registration_id for r in idx.covering(ip(A2))] == [1]
    assert idx.covering(ip(F)) == []


@pytest.mark.parametrize(
    ("registration", "block", "lifted"),
    [
        pytest.param(reg(1, "198.51.100.0/24"), key(A, F, 17, 51820), True, id="local-any-peer"),
        pytest.param(
            reg(1, "198.51.100.0/24", F + "/32"), key(A, F, 17, 1), True, id="peer-listed"
        ),
        pytest.param(
            reg(1, "198.51.100.0/24", F2 + "/32"), key(A, F, 17, 1), False, id="peer-miss"
        ),
        pytest.param(reg(1, "192.0.2.0/24"), key(A, F, 50), False, id="other-prefix"),
        pytest.param(reg(1, "192.0.2.0/24"), key(A, C, 50), True, id="remote-domestic-carries"),
        pytest.param(reg(1, "2001:db8:a::/48"), key(A, F, 47), False, id="other-family"),
        pytest.param(
            ranged(1, A + "/32", 1024, 2047),
            BlockKey(ip(A), ip(F), 17, 51820, 1500),
            True,
            id="range-covers-the-local-port",
        ),
        pytest.param(
            ranged(1, A + "/32", 1024, 2047),
            BlockKey(ip(A), ip(F), 17, 51820, 2048),
            False,
            id="range-misses-the-local-port",
        ),
        pytest.param(
            ranged(1, A + "/32", 1024, 2047),
            key(A, F, 17, 51820),
            True,
            id="range-lifts-a-key-made-before-the-address-was-shared",
        ),
        pytest.param(ranged(1, A + "/32", 0, 65534), key(A, F, 50), False, id="range-not-esp"),
        pytest.param(
            ranged(1, C + "/32", 1024, 2047),
            key(A, C, 17, 1500),
            True,
            id="range-on-the-remote-domestic-side",
        ),
    ],
)
def test_lifted_by(registration: Registration, block: BlockKey, lifted: bool) -> None:
    assert lifted_by(registration)(block) is lifted


@pytest.mark.parametrize("dry_run", [False, True], ids=["enforce", "dry-run"])
@pytest.mark.parametrize(
    ("flow", "registrations"),
    [
        pytest.param(udp(A, F, dport=1194), (), id="domestic-unregistered"),
        pytest.param(udp(A, F, dport=1194), (reg(1, "198.51.100.0/24", "192.0.2.0/24"),),
                     id="domestic-peer-not-listed"),
        pytest.param(udp(F, F2, dport=1194), (), id="no-domestic-endpoint"),
        pytest.param(udp(A, C, dport=1194), (), id="both-domestic"),
    ],
)  # fmt: skip
def test_row_0_unconfirmed_is_passed_and_never_blocked(
    flow: FlowKey, registrations: tuple[Registration, ...], dry_run: bool
) -> None:
    d = decide(
        flow=flow, vpn_protocol="openvpn", index=SimpleIndex(registrations), home=HOME,
        dry_run=dry_run, feed_serial=9, now=NOW, unconfirmed=True,
    )  # fmt: skip
    assert (d.verdict, d.action, d.rule) == (Verdict.UNCONFIRMED, Action.PASS, Rule.UNCONFIRMED)
    assert d.block_keys == () and d.registration_id is None and d.feed_serial == 9
    assert "unconfirmed" in d.explanation and "openvpn" in d.explanation
    # the same flow confirmed is decided by the table (blocked when unregistered)
    confirmed = decide(
        flow=flow, vpn_protocol="openvpn", index=SimpleIndex(registrations), home=HOME,
        dry_run=dry_run, feed_serial=9, now=NOW,
    )  # fmt: skip
    assert confirmed.verdict is not Verdict.UNCONFIRMED


def test_unconfirmed_without_a_protocol_is_not_vpn() -> None:
    d = decide(
        flow=udp(A, F), vpn_protocol="none", index=SimpleIndex(()), home=HOME,
        dry_run=False, feed_serial=None, now=NOW, unconfirmed=True,
    )  # fmt: skip
    assert d.verdict is Verdict.NOT_VPN


# --- port ranges, protocols and expiry in block keys and explanations -----------------------------


def test_a_shared_address_keys_blocks_by_the_domestic_port() -> None:
    """Two subscribers behind one CGNAT address: the unregistered one's block never hits the
    registered one's flow to the same server (same remote address and port)."""
    index = SimpleIndex([ranged(50, A + "/32", 1024, 2047)])
    blocked = decide(
        flow=udp(A, F, sport=3000), vpn_protocol="wireguard", index=index, home=HOME,
        dry_run=False, feed_serial=5, now=NOW,
    )  # fmt: skip
    assert blocked.block_keys == (BlockKey(ip(A), ip(F), 17, 51820, 3000),)
    registered = udp(A, F, sport=1500)
    assert all(
        (k.local, k.remote, k.ip_protocol, k.remote_port, k.local_port)
        != (registered.src_ip, registered.dst_ip, 17, registered.dst_port, registered.src_port)
        for k in blocked.block_keys
    )
    assert "in no registration for this port" in blocked.explanation


def test_pptp_on_a_shared_address() -> None:
    control = FlowKey(ip(A), 3000, ip(F), 1723, 6)
    gre = FlowKey(ip(A), 0, ip(F), 0, 47)
    assert block_keys(control, "pptp", ip(A), shared=True) == (
        BlockKey(ip(A), ip(F), 6, 1723, 3000),
        key(A, F, 47),
    )
    # the GRE flow does not show the control connection's domestic port: no guess
    assert block_keys(gre, "pptp", ip(A), shared=True) == (key(A, F, 47),)


def test_protocol_not_registered_names_the_registration_and_its_protocols() -> None:
    d = decide(
        flow=udp(A, F), vpn_protocol="wireguard",
        index=SimpleIndex([only(61, "198.51.100.0/24", "openvpn", "ipsec")]), home=HOME,
        dry_run=True, feed_serial=5, now=NOW,
    )  # fmt: skip
    assert d.rule is Rule.PROTOCOL_NOT_REGISTERED
    assert d.action is Action.REPORT
    assert "registration 61 (198.51.100.0/24) but not for wireguard" in d.explanation
    assert "(it allows ipsec, openvpn)" in d.explanation


def test_an_ended_registration_is_named_in_the_explanation() -> None:
    d = decide(
        flow=udp(A, F), vpn_protocol="wireguard",
        index=SimpleIndex([ending(41, "198.51.100.0/24", NOW)]), home=HOME,
        dry_run=False, feed_serial=5, now=NOW,
    )  # fmt: skip
    assert d.rule is Rule.NOT_REGISTERED
    assert "registration 41 ended 2026-03-01T12:00:00Z" in d.explanation


def test_block_key_with_a_local_port() -> None:
    k = BlockKey(ip(A), ip(F), 17, 51820, 1500)
    assert str(k) == "198.51.100.10 <-> 203.0.113.40 udp port 51820 local port 1500"
    with pytest.raises(ValueError, match="no ports"):
        BlockKey(ip(A), ip(F), 50, None, 1500)
    with pytest.raises(ValueError, match="local port"):
        BlockKey(ip(A), ip(F), 17, 1, 65536)
