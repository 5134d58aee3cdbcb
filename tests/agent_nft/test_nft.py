"""The nftables back end renders the right scripts; checked with FakeNft, never the real nft."""

from __future__ import annotations

import ipaddress
import json

import pytest

from vpnreg.agent.nft import FakeNft, NftablesBackend, NftError, NftTable, SubprocessNft
from vpnreg.core.policy import BlockKey, Registration, lifted_by

ip = ipaddress.ip_address

WG = BlockKey(ip("198.51.100.2"), ip("203.0.113.2"), 17, 51820)
OVPN_TCP = BlockKey(ip("198.51.100.2"), ip("203.0.113.2"), 6, 1194)
ESP = BlockKey(ip("198.51.100.2"), ip("203.0.113.2"), 50)
GRE6 = BlockKey(ip("2001:db8:a::2"), ip("2001:db8:b::2"), 47)
UDP6 = BlockKey(ip("2001:db8:a::2"), ip("2001:db8:b::2"), 17, 443)
#: A flow from a shared CGNAT address: keyed by the domestic (local) port too.
WG_CGNAT = BlockKey(ip("198.51.100.2"), ip("203.0.113.2"), 17, 51820, 3000)
UDP6_CGNAT = BlockKey(ip("2001:db8:a::2"), ip("2001:db8:b::2"), 17, 443, 1500)


def backend(timeout: int = 600) -> tuple[NftablesBackend, FakeNft]:
    fake = FakeNft()
    return NftablesBackend(fake, timeout=timeout), fake


def test_start_recreates_the_table_in_one_script() -> None:
    b, fake = backend()
    b.start()
    (script,) = fake.scripts
    lines = script.splitlines()
    assert lines[:3] == ["add table inet vpnreg", "delete table inet vpnreg", "table inet vpnreg {"]
    # touches nothing but its own table
    assert "flush ruleset" not in script
    assert all("vpnreg" in line for line in lines if line.split()[:1] in (["add"], ["delete"]))
    assert "type filter hook forward priority filter; policy accept;" in script
    assert "policy drop" not in script


@pytest.mark.parametrize(
    ("name", "type_"),
    [
        pytest.param("v4_port", "ipv4_addr . ipv4_addr . inet_proto . inet_service", id="v4-port"),
        pytest.param("v4_addr", "ipv4_addr . ipv4_addr . inet_proto", id="v4-addr"),
        pytest.param("v6_port", "ipv6_addr . ipv6_addr . inet_proto . inet_service", id="v6-port"),
        pytest.param("v6_addr", "ipv6_addr . ipv6_addr . inet_proto", id="v6-addr"),
        pytest.param(
            "v4_lport",
            "ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service",
            id="v4-lport",
        ),
        pytest.param(
            "v6_lport",
            "ipv6_addr . ipv6_addr . inet_proto . inet_service . inet_service",
            id="v6-lport",
        ),
    ],
)
def test_sets_have_types_and_timeout(name: str, type_: str) -> None:
    text = NftTable(timeout_s=90).render()
    assert f"set {name} {{ type {type_}; flags timeout; timeout 90s; }}" in text


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(
            "ip saddr . ip daddr . meta l4proto . th dport @v4_port counter drop", id="v4p-out"
        ),
        pytest.param(
            "ip daddr . ip saddr . meta l4proto . th sport @v4_port counter drop", id="v4p-in"
        ),
        pytest.param("ip saddr . ip daddr . meta l4proto @v4_addr counter drop", id="v4a-out"),
        pytest.param("ip daddr . ip saddr . meta l4proto @v4_addr counter drop", id="v4a-in"),
        pytest.param(
            "ip6 saddr . ip6 daddr . meta l4proto . th dport @v6_port counter drop", id="v6p-out"
        ),
        pytest.param(
            "ip6 daddr . ip6 saddr . meta l4proto . th sport @v6_port counter drop", id="v6p-in"
        ),
        pytest.param("ip6 saddr . ip6 daddr . meta l4proto @v6_addr counter drop", id="v6a-out"),
        pytest.param("ip6 daddr . ip6 saddr . meta l4proto @v6_addr counter drop", id="v6a-in"),
        # the domestic side's port: its source port outbound, its destination port inbound
        pytest.param(
            "ip saddr . ip daddr . meta l4proto . th dport . th sport @v4_lport counter drop",
            id="v4l-out",
        ),
        pytest.param(
            "ip daddr . ip saddr . meta l4proto . th sport . th dport @v4_lport counter drop",
            id="v4l-in",
        ),
        pytest.param(
            "ip6 saddr . ip6 daddr . meta l4proto . th dport . th sport @v6_lport counter drop",
            id="v6l-out",
        ),
        pytest.param(
            "ip6 daddr . ip6 saddr . meta l4proto . th sport . th dport @v6_lport counter drop",
            id="v6l-in",
        ),
    ],
)
def test_forward_chain_drops_both_directions(rule: str) -> None:
    assert f"\t\t{rule}\n" in NftTable().render()


def test_default_timeout_is_ten_minutes() -> None:
    assert NftablesBackend(FakeNft()).table.timeout_s == 600
    with pytest.raises(ValueError, match="positive"):
        NftablesBackend(FakeNft(), timeout=0)


@pytest.mark.parametrize(
    ("key", "line"),
    [
        pytest.param(
            WG, "inet vpnreg v4_port { 198.51.100.2 . 203.0.113.2 . 17 . 51820 }", id="udp"
        ),
        pytest.param(
            OVPN_TCP, "inet vpnreg v4_port { 198.51.100.2 . 203.0.113.2 . 6 . 1194 }", id="tcp"
        ),
        pytest.param(ESP, "inet vpnreg v4_addr { 198.51.100.2 . 203.0.113.2 . 50 }", id="esp"),
        pytest.param(GRE6, "inet vpnreg v6_addr { 2001:db8:a::2 . 2001:db8:b::2 . 47 }", id="gre6"),
        pytest.param(
            UDP6, "inet vpnreg v6_port { 2001:db8:a::2 . 2001:db8:b::2 . 17 . 443 }", id="udp6"
        ),
        pytest.param(
            WG_CGNAT,
            "inet vpnreg v4_lport { 198.51.100.2 . 203.0.113.2 . 17 . 51820 . 3000 }",
            id="udp-cgnat",
        ),
        pytest.param(
            UDP6_CGNAT,
            "inet vpnreg v6_lport { 2001:db8:a::2 . 2001:db8:b::2 . 17 . 443 . 1500 }",
            id="udp6-cgnat",
        ),
    ],
)
def test_block_adds_refreshes_each_key(key: BlockKey, line: str) -> None:
    b, fake = backend()
    b.block([key])
    # add (creates), delete + add (fresh timeout if it existed): never fails, always one transaction
    assert fake.scripts == [f"add element {line}\ndelete element {line}\nadd element {line}\n"]


def test_block_many_keys_is_one_script_without_duplicates() -> None:
    b, fake = backend()
    b.block([WG, ESP, WG, GRE6])
    assert len(fake.scripts) == 1
    assert fake.scripts[0].count("add element") == 6
    b.block([])
    assert len(fake.scripts) == 1  # nothing to do, nft not called


def test_unblock_is_add_then_delete() -> None:
    b, fake = backend()
    b.unblock([ESP])
    line = "inet vpnreg v4_addr { 198.51.100.2 . 203.0.113.2 . 50 }"
    assert fake.scripts == [f"add element {line}\ndelete element {line}\n"]


def test_stop_deletes_only_the_table() -> None:
    b, fake = backend()
    b.stop()
    assert fake.scripts == ["add table inet vpnreg\ndelete table inet vpnreg\n"]


# What nft 1.0.6 prints for `nft -j -p list table inet vpnreg` (recorded from the real binary),
# plus a set of another table and a named protocol, which must be ignored / understood.
LISTING = {
    "nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "vpnreg", "handle": 3}},
        {
            "set": {
                "family": "inet", "name": "v4_port", "table": "vpnreg", "handle": 2,
                "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"],
                "flags": ["timeout"], "timeout": 600,
                "elem": [
                    {"elem": {"val": {"concat": ["198.51.100.2", "203.0.113.2", 17, 51820]},
                              "expires": 595}},
                    {"elem": {"val": {"concat": ["198.51.100.2", "203.0.113.2", "tcp", 1194]},
                              "expires": 12}},
                ],
            }
        },
        {
            "set": {
                "family": "inet", "name": "v4_addr", "table": "vpnreg", "handle": 3,
                "type": ["ipv4_addr", "ipv4_addr", "inet_proto"], "flags": ["timeout"],
                "timeout": 600,
            }
        },
        {
            "set": {
                "family": "inet", "name": "v6_addr", "table": "vpnreg", "handle": 5,
                "type": ["ipv6_addr", "ipv6_addr", "inet_proto"], "flags": ["timeout"],
                "timeout": 600,
                "elem": [{"elem": {"val": {"concat": ["2001:db8:a::2", "2001:db8:b::2", 47]},
                                   "expires": 300}}],
            }
        },
        {
            "set": {
                "family": "inet", "name": "v4_lport", "table": "vpnreg", "handle": 6,
                "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service", "inet_service"],
                "flags": ["timeout"], "timeout": 600,
                "elem": [{"elem": {"val": {"concat": ["198.51.100.2", "203.0.113.2", 17, 51820,
                                                      3000]}, "expires": 42}}],
            }
        },
        {"set": {"family": "inet", "name": "v4_port", "table": "someone_else",
                 "elem": [{"elem": {"val": {"concat": ["192.0.2.1", "192.0.2.2", 17, 1]}}}]}},
        {"chain": {"family": "inet", "table": "vpnreg", "name": "forward", "handle": 1}},
    ]
}  # fmt: skip


def test_active_blocks_parses_json_listing() -> None:
    b, fake = backend()
    fake.listing = json.dumps(LISTING)
    active = b.active_blocks()
    assert fake.queries == [("list", "table", "inet", "vpnreg")]
    assert [(a.key, a.expires_in_s) for a in active] == [
        (WG, 595.0),
        (OVPN_TCP, 12.0),
        (GRE6, 300.0),
        (WG_CGNAT, 42.0),
    ]


def test_unblock_matching_removes_only_what_a_registration_lifts() -> None:
    b, fake = backend()
    fake.listing = json.dumps(LISTING)
    registration = Registration(5, ipaddress.ip_network("2001:db8:a::/48"))
    removed = b.unblock_matching(lifted_by(registration))
    assert removed == (GRE6,)
    line = "inet vpnreg v6_addr { 2001:db8:a::2 . 2001:db8:b::2 . 47 }"
    assert fake.scripts == [f"add element {line}\ndelete element {line}\n"]


def test_unblock_matching_nothing_runs_nothing() -> None:
    b, fake = backend()
    fake.listing = json.dumps(LISTING)
    assert b.unblock_matching(lambda key: False) == ()
    assert fake.scripts == []


def test_runner_errors_propagate() -> None:
    fake = FakeNft(fail_with=NftError("nft -f -", 1, "Error: Could not process rule\n"))
    with pytest.raises(NftError, match=r"exit 1\): Error: Could not process rule"):
        NftablesBackend(fake).start()


def test_subprocess_nft_reports_stderr() -> None:
    # `false` stands in for a failing nft: exit 1 and no message
    runner = SubprocessNft(nft="false")
    with pytest.raises(NftError, match=r"nft -f - failed \(exit 1\): no message"):
        runner.run("add table inet vpnreg\n")


def test_subprocess_nft_passes_prefix_and_stdin() -> None:
    # the prefix runs instead of nft: it echoes the script (stdin) to stderr and fails with 3
    runner = SubprocessNft(nft="nft", prefix=["sh", "-c", 'cat >&2; echo "$@"; exit 3'])
    with pytest.raises(NftError) as info:
        runner.run("flush set inet vpnreg v4_port\n")
    assert info.value.returncode == 3
    assert "flush set inet vpnreg v4_port" in info.value.stderr
