"""Exact output of every export format on a small fixed allowlist, and the renderers' contract."""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import random
from collections.abc import Sequence
from ipaddress import ip_network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpnreg.core.exporters import (
    CATEGORIES_FILE,
    MAIN_FILE,
    ExportFormat,
    file_suffixes,
    port_boxes,
    render,
)
from vpnreg.core.feed import AllowlistEntry, VpnProtocol

from .sample import GENERATED, SAMPLE, entry

HEADER = "# generated 2026-01-15T09:00:00Z; 6 entries; 2 IPv4 and 1 IPv6 prefixes after merging\n"

NFT = (
    "#!/usr/sbin/nft -f\n"
    "# vpnreg allowlist, nftables: plain data, unsigned\n"
    + HEADER
    + "# Load with `nft -f`: one transaction that declares table inet vpnreg_allow if it is\n"
    "# missing, empties its sets and fills them again. Chains you add to this table keep\n"
    "# their rules; nothing outside the table is touched. allow4/allow6: every registered\n"
    "# address; allow4_ports/allow6_ports: address . domestic port, exactly as registered\n"
    "# (a shared CGNAT address only for its registered port blocks).\n"
    "table inet vpnreg_allow {\n"
    "\tset allow4 {\n"
    "\t\ttype ipv4_addr\n"
    "\t\tflags interval\n"
    "\t}\n"
    "\tset allow6 {\n"
    "\t\ttype ipv6_addr\n"
    "\t\tflags interval\n"
    "\t}\n"
    "\tset allow4_ports {\n"
    "\t\ttype ipv4_addr . inet_service\n"
    "\t\tflags interval\n"
    "\t}\n"
    "\tset allow6_ports {\n"
    "\t\ttype ipv6_addr . inet_service\n"
    "\t\tflags interval\n"
    "\t}\n"
    "}\n"
    "flush set inet vpnreg_allow allow4\n"
    "flush set inet vpnreg_allow allow6\n"
    "flush set inet vpnreg_allow allow4_ports\n"
    "flush set inet vpnreg_allow allow6_ports\n"
    "add element inet vpnreg_allow allow4 {\n"
    "\t192.0.2.0/24,\n"
    "\t203.0.113.0/24\n"
    "}\n"
    "add element inet vpnreg_allow allow6 {\n"
    "\t2001:db8:1::/48\n"
    "}\n"
    "add element inet vpnreg_allow allow4_ports {\n"
    "\t192.0.2.0/24 . 0-65535,\n"
    "\t203.0.113.0/24 . 0-65535\n"
    "}\n"
    "add element inet vpnreg_allow allow6_ports {\n"
    "\t2001:db8:1::/48 . 0-65535\n"
    "}\n"
)

IPSET = (
    "# vpnreg allowlist, ipset: plain data, unsigned\n"
    + HEADER
    + "# Load with `ipset restore`: fills scratch sets, then swaps them with vpnreg_allow4 and\n"
    "# vpnreg_allow6 (created if missing), so each live set changes in one step.\n"
    "create vpnreg_allow4-new hash:net family inet maxelem 1048576 -exist\n"
    "flush vpnreg_allow4-new\n"
    "add vpnreg_allow4-new 192.0.2.0/24\n"
    "add vpnreg_allow4-new 203.0.113.0/24\n"
    "create vpnreg_allow4 hash:net family inet maxelem 1048576 -exist\n"
    "swap vpnreg_allow4-new vpnreg_allow4\n"
    "destroy vpnreg_allow4-new\n"
    "create vpnreg_allow6-new hash:net family inet6 maxelem 1048576 -exist\n"
    "flush vpnreg_allow6-new\n"
    "add vpnreg_allow6-new 2001:db8:1::/48\n"
    "create vpnreg_allow6 hash:net family inet6 maxelem 1048576 -exist\n"
    "swap vpnreg_allow6-new vpnreg_allow6\n"
    "destroy vpnreg_allow6-new\n"
)

SURICATA_REPUTATION = (
    "# vpnreg allowlist, Suricata IP reputation: plain data, unsigned\n"
    + HEADER
    + "# <ip>,<category>,<score>; category 1 is defined in the categories file\n"
    "192.0.2.0/24,1,127\n"
    "203.0.113.0/24,1,127\n"
    "2001:db8:1::/48,1,127\n"
)

SURICATA_CATEGORIES = (
    "# vpnreg allowlist, Suricata IP reputation: plain data, unsigned\n"
    + HEADER
    + "# <id>,<short name>,<description>\n"
    "1,VpnregAllowed,Registered VPN endpoint prefixes (vpnreg allowlist)\n"
)

ZEEK = (
    "# vpnreg allowlist, Zeek intelligence: plain data, unsigned\n"
    + HEADER
    + "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
    "192.0.2.0/25\tIntel::SUBNET\tvpnreg\t"
    "vpnreg registration 17 until 2027-01-31T19:00:00Z (exclusive), ports any, "
    "protocols any, peers any\n"
    "192.0.2.128/25\tIntel::SUBNET\tvpnreg\t"
    "vpnreg registration 18 until 2027-01-31T19:00:00Z (exclusive), ports any, "
    "protocols any, peers 198.51.100.0/24 2001:db8:ffff::/48\n"
    "203.0.113.0/24\tIntel::SUBNET\tvpnreg\t"
    "vpnreg registration 21 until 2027-01-31T19:00:00Z (exclusive), ports any, "
    "protocols any, peers 198.51.100.7/32\n"
    "203.0.113.64/26\tIntel::SUBNET\tvpnreg\t"
    "vpnreg registration 22 until 2026-06-30T19:00:00Z (exclusive), ports any, "
    "protocols any, peers any\n"
    "2001:db8:1::/48\tIntel::SUBNET\tvpnreg\t"
    "vpnreg registration 30 until 2027-01-31T19:00:00Z (exclusive), ports any, "
    "protocols any, peers 2001:db8:ff::/48; "
    "vpnreg registration 31 until 2027-01-31T19:00:00Z (exclusive), ports any, "
    "protocols any, peers any\n"
)

TXT = "192.0.2.0/25\n192.0.2.128/25\n203.0.113.0/24\n203.0.113.64/26\n2001:db8:1::/48\n"

EXPECTED = {
    ExportFormat.TXT: {MAIN_FILE: TXT},
    ExportFormat.NFT: {MAIN_FILE: NFT},
    ExportFormat.IPSET: {MAIN_FILE: IPSET},
    ExportFormat.SURICATA_IPREP: {
        MAIN_FILE: SURICATA_REPUTATION,
        CATEGORIES_FILE: SURICATA_CATEGORIES,
    },
    ExportFormat.ZEEK_INTEL: {MAIN_FILE: ZEEK},
}


@pytest.mark.parametrize("fmt", list(EXPECTED), ids=str)
def test_exact_output_on_the_sample(fmt: ExportFormat) -> None:
    assert render(fmt, SAMPLE, generated=GENERATED) == EXPECTED[fmt]


def test_json_is_every_entry_in_canonical_order() -> None:
    text = render(ExportFormat.JSON, SAMPLE, generated=GENERATED)[MAIN_FILE]
    document = json.loads(text)
    assert document == {
        "generated": "2026-01-15T09:00:00Z",
        "count": 6,
        "entries": [
            {
                "prefix": "192.0.2.0/25",
                "peers": [],
                "registration_id": 17,
                "valid_until": "2027-01-31T19:00:00Z",
                "ports": [0, 65535],
                "protocols": [],
            },
            {
                "prefix": "192.0.2.128/25",
                "peers": ["198.51.100.0/24", "2001:db8:ffff::/48"],
                "registration_id": 18,
                "valid_until": "2027-01-31T19:00:00Z",
                "ports": [0, 65535],
                "protocols": [],
            },
            {
                "prefix": "203.0.113.0/24",
                "peers": ["198.51.100.7/32"],
                "registration_id": 21,
                "valid_until": "2027-01-31T19:00:00Z",
                "ports": [0, 65535],
                "protocols": [],
            },
            {
                "prefix": "203.0.113.64/26",
                "peers": [],
                "registration_id": 22,
                "valid_until": "2026-06-30T19:00:00Z",
                "ports": [0, 65535],
                "protocols": [],
            },
            {
                "prefix": "2001:db8:1::/48",
                "peers": ["2001:db8:ff::/48"],
                "registration_id": 30,
                "valid_until": "2027-01-31T19:00:00Z",
                "ports": [0, 65535],
                "protocols": [],
            },
            {
                "prefix": "2001:db8:1::/48",
                "peers": [],
                "registration_id": 31,
                "valid_until": "2027-01-31T19:00:00Z",
                "ports": [0, 65535],
                "protocols": [],
            },
        ],
    }
    assert text == json.dumps(document, indent=2) + "\n"
    parsed = [AllowlistEntry.from_json(obj) for obj in document["entries"]]
    assert set(parsed) == set(SAMPLE)


EMPTY_MAIN = {
    ExportFormat.JSON: (
        '{\n  "generated": "2026-01-15T09:00:00Z",\n  "count": 0,\n  "entries": []\n}\n'
    ),
    ExportFormat.TXT: "",
    ExportFormat.SURICATA_IPREP: (
        "# vpnreg allowlist, Suricata IP reputation: plain data, unsigned\n"
        "# generated 2026-01-15T09:00:00Z; 0 entries; 0 IPv4 and 0 IPv6 prefixes after merging\n"
        "# <ip>,<category>,<score>; category 1 is defined in the categories file\n"
    ),
    ExportFormat.ZEEK_INTEL: (
        "# vpnreg allowlist, Zeek intelligence: plain data, unsigned\n"
        "# generated 2026-01-15T09:00:00Z; 0 entries; 0 IPv4 and 0 IPv6 prefixes after merging\n"
        "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
    ),
}


@pytest.mark.parametrize("fmt", list(EMPTY_MAIN), ids=str)
def test_empty_allowlist(fmt: ExportFormat) -> None:
    assert render(fmt, [], generated=GENERATED)[MAIN_FILE] == EMPTY_MAIN[fmt]


def test_empty_nft_declares_every_set_and_adds_no_element() -> None:
    text = render(ExportFormat.NFT, [], generated=GENERATED)[MAIN_FILE]
    assert "add element" not in text
    assert "elements" not in text
    assert text.endswith(
        "flush set inet vpnreg_allow allow4\nflush set inet vpnreg_allow allow6\n"
        "flush set inet vpnreg_allow allow4_ports\nflush set inet vpnreg_allow allow6_ports\n"
    )
    assert "\tset allow4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n" in text
    assert "\tset allow6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t}\n" in text


def test_empty_ipset_still_creates_and_swaps_both_sets() -> None:
    text = render(ExportFormat.IPSET, [], generated=GENERATED)[MAIN_FILE]
    commands = [line for line in text.splitlines() if not line.startswith("#")]
    assert commands == [
        "create vpnreg_allow4-new hash:net family inet maxelem 1048576 -exist",
        "flush vpnreg_allow4-new",
        "create vpnreg_allow4 hash:net family inet maxelem 1048576 -exist",
        "swap vpnreg_allow4-new vpnreg_allow4",
        "destroy vpnreg_allow4-new",
        "create vpnreg_allow6-new hash:net family inet6 maxelem 1048576 -exist",
        "flush vpnreg_allow6-new",
        "create vpnreg_allow6 hash:net family inet6 maxelem 1048576 -exist",
        "swap vpnreg_allow6-new vpnreg_allow6",
        "destroy vpnreg_allow6-new",
    ]


def test_ipset_splits_the_whole_space_because_hash_net_refuses_slash_zero() -> None:
    text = render(ExportFormat.IPSET, [entry("0.0.0.0/0", 1)], generated=GENERATED)[MAIN_FILE]
    adds = [line for line in text.splitlines() if line.startswith("add ")]
    assert adds == ["add vpnreg_allow4-new 0.0.0.0/1", "add vpnreg_allow4-new 128.0.0.0/1"]


@pytest.mark.parametrize("fmt", list(ExportFormat), ids=str)
def test_keys_are_the_declared_file_suffixes(fmt: ExportFormat) -> None:
    out = render(fmt, SAMPLE, generated=GENERATED)
    assert tuple(out) == file_suffixes(fmt)
    assert all(content.endswith("\n") for content in out.values() if content)


@pytest.mark.parametrize("fmt", list(ExportFormat), ids=str)
def test_input_order_and_duplicates_do_not_change_the_output(fmt: ExportFormat) -> None:
    shuffled = list(SAMPLE) * 2
    random.Random(7).shuffle(shuffled)
    reference = render(fmt, SAMPLE, generated=GENERATED)
    # The header counts distinct entries, so duplicates leave even it unchanged.
    assert render(fmt, shuffled, generated=GENERATED) == reference


@pytest.mark.parametrize("fmt", list(ExportFormat), ids=str)
def test_generated_is_written_in_utc(fmt: ExportFormat) -> None:
    karachi = dt.timezone(dt.timedelta(hours=5))
    local = GENERATED.astimezone(karachi)
    assert render(fmt, SAMPLE, generated=local) == render(fmt, SAMPLE, generated=GENERATED)


@pytest.mark.parametrize("fmt", list(ExportFormat), ids=str)
def test_naive_generated_is_refused(fmt: ExportFormat) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render(fmt, SAMPLE, generated=dt.datetime(2026, 1, 15, 9, 0))


def test_format_names_are_the_cli_spellings() -> None:
    assert [str(f) for f in ExportFormat] == [
        "json",
        "txt",
        "nft",
        "ipset",
        "suricata-iprep",
        "zeek-intel",
    ]


# -- merging, against brute force over one /24 ------------------------------------------------

BASE = int(ipaddress.IPv4Address("192.0.2.0"))


@st.composite
def small_prefixes(draw: st.DrawFn) -> ipaddress.IPv4Network:
    plen = draw(st.integers(min_value=24, max_value=32))
    index = draw(st.integers(min_value=0, max_value=2 ** (32 - plen) - 1))
    return ipaddress.IPv4Network((BASE + (index << (32 - plen)), plen))


def _reputation_prefixes(entries: Sequence[AllowlistEntry]) -> list[ipaddress.IPv4Network]:
    text = render(ExportFormat.SURICATA_IPREP, entries, generated=GENERATED)[MAIN_FILE]
    rows = [line.split(",") for line in text.splitlines() if not line.startswith("#")]
    assert all(row[1:] == ["1", "127"] for row in rows)
    return [ipaddress.IPv4Network(row[0]) for row in rows]


def _nft_prefixes(entries: Sequence[AllowlistEntry]) -> list[ipaddress.IPv4Network]:
    text = render(ExportFormat.NFT, entries, generated=GENERATED)[MAIN_FILE]
    lines = text.splitlines()
    if "add element inet vpnreg_allow allow4 {" not in lines:
        return []
    start = lines.index("add element inet vpnreg_allow allow4 {") + 1
    end = lines.index("}", start)
    return [ipaddress.IPv4Network(line.strip().rstrip(",")) for line in lines[start:end]]


@given(st.lists(small_prefixes(), max_size=12))
def test_merged_prefixes_cover_exactly_the_registered_addresses(
    prefixes: list[ipaddress.IPv4Network],
) -> None:
    entries = [entry(str(p), i + 1) for i, p in enumerate(prefixes)]
    covered = {a for p in prefixes for a in range(int(p[0]), int(p[-1]) + 1)}
    for merged in (_reputation_prefixes(entries), _nft_prefixes(entries)):
        assert merged == sorted(merged, key=lambda n: int(n.network_address))
        spans = [(int(n[0]), int(n[-1])) for n in merged]
        listed = [a for first, last in spans for a in range(first, last + 1)]
        assert len(listed) == len(set(listed)), "merged prefixes overlap"
        assert set(listed) == covered
        # Fewest blocks: a decomposition with no two sibling blocks (halves of one prefix) is
        # the minimal one.
        for a, b in itertools.pairwise(merged):
            assert not (a.prefixlen == b.prefixlen and a.supernet() == b.supernet()), (a, b)


def test_a_port_ranged_entry_is_said_where_the_format_can_say_it() -> None:
    """A CGNAT port block with an end instant and a protocol: json and zeek-intel carry them,
    the address sets list the whole address (never leaving out a registered subscriber)."""
    cgnat = AllowlistEntry(
        prefix=ip_network("198.51.100.7/32"),
        peers=(),
        registration_id=40,
        valid_until=dt.datetime(2026, 1, 15, 21, 30, 5, tzinfo=dt.UTC),
        ports=(1024, 2047),
        protocols=frozenset({VpnProtocol.WIREGUARD}),
    )
    as_json = json.loads(render(ExportFormat.JSON, [cgnat], generated=GENERATED)[MAIN_FILE])
    assert as_json["entries"] == [
        {
            "prefix": "198.51.100.7/32",
            "peers": [],
            "registration_id": 40,
            "valid_until": "2026-01-15T21:30:05Z",
            "ports": [1024, 2047],
            "protocols": ["wireguard"],
        }
    ]
    zeek = render(ExportFormat.ZEEK_INTEL, [cgnat], generated=GENERATED)[MAIN_FILE]
    assert (
        "vpnreg registration 40 until 2026-01-15T21:30:05Z (exclusive), ports 1024-2047,"
        " protocols wireguard, peers any"
    ) in zeek
    assert render(ExportFormat.TXT, [cgnat], generated=GENERATED)[MAIN_FILE] == "198.51.100.7/32\n"
    nft = render(ExportFormat.NFT, [cgnat], generated=GENERATED)[MAIN_FILE]
    assert "add element inet vpnreg_allow allow4 {\n\t198.51.100.7/32\n}" in nft
    assert "add element inet vpnreg_allow allow4_ports {\n\t198.51.100.7/32 . 1024-2047\n}" in nft


def _pairs(entries: Sequence[AllowlistEntry], version: int, ports: range) -> set[tuple[int, int]]:
    """(address, port) pairs the entries register, by brute force over a small space."""
    return {
        (int(address), port)
        for entry in entries
        if entry.prefix.version == version
        for address in entry.prefix
        for port in ports
        if entry.ports[0] <= port <= entry.ports[1]
    }


_SPACE = [
    ipaddress.ip_network(f"198.51.100.{a}/{p}", strict=False)
    for a in (0, 4, 7, 8)
    for p in (29, 30, 32)
]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(_SPACE),
            st.one_of(
                st.just((0, 65535)),
                st.integers(0, 12).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo, 12))),
            ),
        ),
        max_size=8,
    )
)
def test_nft_port_elements_are_disjoint_and_exact(boxes: list[tuple[Any, tuple[int, int]]]) -> None:
    entries = [
        AllowlistEntry(
            prefix=prefix,
            peers=(),
            registration_id=i + 1,
            valid_until=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
            ports=ports,
        )
        for i, (prefix, ports) in enumerate(boxes)
    ]
    elements = port_boxes(entries, 4)
    covered = [
        # ports 0..12 hold every edge the entries draw; 65535 stands for the rest
        {(int(a), port) for a in prefix for port in range(lo, min(hi, 12) + 1)}
        for prefix, lo, hi in elements
    ]
    assert sum(len(c) for c in covered) == len(set().union(*covered))  # pairwise disjoint
    assert set().union(*covered) == _pairs(entries, 4, range(13))
