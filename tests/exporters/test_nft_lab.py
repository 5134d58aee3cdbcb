"""The nft export against the real nft, inside a network namespace the test makes."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from vpnreg.core.exporters import (
    NFT_SET_V4,
    NFT_SET_V6,
    NFT_TABLE,
    ExportFormat,
    render,
    render_nft_changes,
)
from vpnreg.core.feed import AllowlistEntry, Network

from .conftest import Netns
from .sample import GENERATED, SAMPLE, entry

pytestmark = pytest.mark.lab

#: The gateway agent's own table (a stand-in here): loading the export must leave it alone.
AGENT_TABLE = """\
table inet vpnreg {
\tset registered4 {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 198.51.100.0/24 }
\t}
\tchain forward {
\t\ttype filter hook forward priority 0; policy accept;
\t\tip daddr @registered4 counter accept
\t}
}
"""

V1 = [entry("192.0.2.0/24", 1), entry("2001:db8:a::/48", 2), entry("203.0.113.0/25", 3)]
V2 = [entry("203.0.113.0/25", 3), entry("203.0.113.128/25", 4), entry("2001:db8:b::/48", 5)]


def nft_text(entries: list[AllowlistEntry]) -> str:
    return render(ExportFormat.NFT, entries, generated=GENERATED)[""]


def _element(elem: Any) -> Network:
    if isinstance(elem, str):
        return ipaddress.ip_network(elem)
    if "prefix" in elem:
        return ipaddress.ip_network(f"{elem['prefix']['addr']}/{elem['prefix']['len']}")
    raise AssertionError(f"unexpected set element {elem!r}")


def set_elements(ns: Netns, name: str) -> list[Network]:
    listing = json.loads(ns.run("nft", "-j", "list", "set", "inet", NFT_TABLE, name))
    (found,) = [item["set"] for item in listing["nftables"] if "set" in item]
    return sorted((_element(e) for e in found.get("elem", [])), key=str)


def nets(*texts: str) -> list[Network]:
    return sorted((ipaddress.ip_network(t) for t in texts), key=str)


def test_nft_check_mode_accepts_sample_and_empty(netns: Netns, tmp_path: Path) -> None:
    netns.nft_file(tmp_path, nft_text(list(SAMPLE)), "-c")
    netns.nft_file(tmp_path, nft_text([]), "-c")
    # Check mode changes nothing.
    assert netns.run("nft", "list", "ruleset") == ""


def test_nft_check_mode_rejects_a_broken_file(netns: Netns, tmp_path: Path) -> None:
    broken = nft_text(list(SAMPLE)).replace("192.0.2.0/24", "192.0.2.0/33")
    with pytest.raises(AssertionError, match="failed"):
        netns.nft_file(tmp_path, broken, "-c")


def test_empty_registry_loads_into_an_empty_ruleset(netns: Netns, tmp_path: Path) -> None:
    netns.nft_file(tmp_path, nft_text([]))
    assert set_elements(netns, NFT_SET_V4) == []
    assert set_elements(netns, NFT_SET_V6) == []


def test_sample_loads_merged(netns: Netns, tmp_path: Path) -> None:
    netns.nft_file(tmp_path, nft_text(list(SAMPLE)))
    assert set_elements(netns, NFT_SET_V4) == nets("192.0.2.0/24", "203.0.113.0/24")
    assert set_elements(netns, NFT_SET_V6) == nets("2001:db8:1::/48")


def test_v2_over_v1_replaces_the_elements_and_leaves_other_tables(
    netns: Netns, tmp_path: Path
) -> None:
    netns.nft_file(tmp_path, AGENT_TABLE)
    agent_before = netns.run("nft", "-j", "list", "table", "inet", "vpnreg")

    netns.nft_file(tmp_path, nft_text(V1))
    assert set_elements(netns, NFT_SET_V4) == nets("192.0.2.0/24", "203.0.113.0/25")
    assert set_elements(netns, NFT_SET_V6) == nets("2001:db8:a::/48")

    netns.nft_file(tmp_path, nft_text(V2))
    # 203.0.113.0/25 and .128/25 are adjacent: one interval.
    assert set_elements(netns, NFT_SET_V4) == nets("203.0.113.0/24")
    assert set_elements(netns, NFT_SET_V6) == nets("2001:db8:b::/48")

    assert netns.run("nft", "-j", "list", "table", "inet", "vpnreg") == agent_before
    tables = json.loads(netns.run("nft", "-j", "list", "tables"))["nftables"]
    names = sorted(t["table"]["name"] for t in tables if "table" in t)
    assert names == ["vpnreg", NFT_TABLE]


def test_reloading_the_same_version_and_then_an_empty_one(netns: Netns, tmp_path: Path) -> None:
    netns.nft_file(tmp_path, nft_text(V1))
    netns.nft_file(tmp_path, nft_text(V1))
    assert set_elements(netns, NFT_SET_V4) == nets("192.0.2.0/24", "203.0.113.0/25")
    netns.nft_file(tmp_path, nft_text([]))
    assert set_elements(netns, NFT_SET_V4) == []
    assert set_elements(netns, NFT_SET_V6) == []


def test_a_chain_added_to_the_table_keeps_its_rule_across_reloads(
    netns: Netns, tmp_path: Path
) -> None:
    netns.nft_file(tmp_path, nft_text(V1))
    netns.run(
        "nft", "add", "chain", "inet", NFT_TABLE, "input",
        "{ type filter hook input priority 0; policy accept; }",
    )  # fmt: skip
    netns.run("nft", "add", "rule", "inet", NFT_TABLE, "input", "ip", "saddr", "@allow4", "accept")
    netns.nft_file(tmp_path, nft_text(V2))
    listing = netns.run("nft", "list", "chain", "inet", NFT_TABLE, "input")
    assert "ip saddr @allow4 accept" in listing
    assert set_elements(netns, NFT_SET_V4) == nets("203.0.113.0/24")


def test_port_ranged_entries_load_as_disjoint_address_port_intervals(
    netns: Netns, tmp_path: Path
) -> None:
    """CGNAT port blocks beside a whole prefix around them and an overlapping block of the same
    address: the real nft takes the file, loads it twice, and holds exactly what is registered."""
    ranged = [
        dataclasses.replace(entry("198.51.100.7/32", 10), ports=(1024, 2047)),
        dataclasses.replace(entry("198.51.100.7/32", 11), ports=(2000, 3071)),
        dataclasses.replace(entry("198.51.100.0/30", 12), ports=(1500, 1600)),
        dataclasses.replace(entry("2001:db8:c::1/128", 13), ports=(443, 443)),
        *SAMPLE,
    ]
    netns.nft_file(tmp_path, nft_text(ranged))
    netns.nft_file(tmp_path, nft_text(ranged))
    listing = json.loads(netns.run("nft", "-j", "list", "set", "inet", NFT_TABLE, "allow4_ports"))
    (found,) = [item["set"] for item in listing["nftables"] if "set" in item]
    assert len(found["elem"]) == 4
    text = netns.run("nft", "list", "set", "inet", NFT_TABLE, "allow4_ports")
    for element in (
        "198.51.100.0/30 . 1500-1600",
        "198.51.100.7 . 1024-3071",
        "192.0.2.0/24 . 0-65535",
        "203.0.113.0/24 . 0-65535",
    ):
        assert element in text
    assert "2001:db8:c::1 . 443" in netns.run(
        "nft", "list", "set", "inet", NFT_TABLE, "allow6_ports"
    )
    # the address sets keep listing every registered address, port blocks included
    assert ipaddress.ip_network("198.51.100.7/32") in set_elements(netns, NFT_SET_V4)


# -- the incremental path: `feed export --format nft --since SERIAL` -----------------------------


def all_elements(ns: Netns) -> dict[str, list[str]]:
    """Every element of the export's four sets, as nft lists them (sorted)."""
    found = {}
    for name in (NFT_SET_V4, NFT_SET_V6, "allow4_ports", "allow6_ports"):
        text = ns.run("nft", "list", "set", "inet", NFT_TABLE, name)
        body = text.partition("elements = {")[2].partition("}")[0]
        found[name] = sorted(e.strip() for e in body.split(",") if e.strip())
    return found


def changes(old: list[AllowlistEntry], new: list[AllowlistEntry]) -> str:
    text, _, _ = render_nft_changes(old, new, generated=GENERATED, what="test")
    return text


RANGED = [
    dataclasses.replace(entry("198.51.100.7/32", 10), ports=(1024, 2047)),
    dataclasses.replace(entry("2001:db8:c::1/128", 13), ports=(443, 443)),
]


def test_changes_bring_the_sets_of_one_export_to_those_of_the_next(
    netns: Netns, tmp_path: Path
) -> None:
    old, new = [*V1, *RANGED], [*V2, RANGED[1]]
    netns.nft_file(tmp_path, nft_text(old))
    netns.nft_file(tmp_path, changes(old, new))
    incremental = all_elements(netns)
    # 203.0.113.0/25 grew into /24 (a deletion and a creation in one transaction)
    assert incremental[NFT_SET_V4] == ["203.0.113.0/24"]
    netns.nft_file(tmp_path, nft_text(new))  # the full export of the new state holds the same
    assert all_elements(netns) == incremental
    netns.nft_file(tmp_path, changes(new, new))  # nothing changed: only comments, still loads
    assert all_elements(netns) == incremental


def test_changes_over_the_wrong_sets_fail_whole_and_change_nothing(
    netns: Netns, tmp_path: Path
) -> None:
    netns.nft_file(tmp_path, nft_text(V1))
    netns.nft_file(tmp_path, changes(V1, V2))
    held = all_elements(netns)
    with pytest.raises(AssertionError, match="failed"):
        netns.nft_file(tmp_path, changes(V1, V2))  # applied twice: its deletions are gone
    assert all_elements(netns) == held


def test_a_thousand_element_update_of_a_large_set(netns: Netns, tmp_path: Path) -> None:
    """5,000 /24s, then 500 of them withdrawn and 500 others registered: the changes script
    touches exactly those 1,000 elements and leaves the sets as a full reload would."""
    base = [entry(f"10.{i // 256}.{i % 256}.0/24", i + 1) for i in range(0, 10_000, 2)]
    gone, come = (
        base[:500],
        [entry(f"10.{i // 256}.{i % 256}.0/24", i + 1) for i in range(1, 1000, 2)],
    )
    new = [*base[500:], *come]
    text, deleted, created = render_nft_changes(base, new, generated=GENERATED, what="test")
    # the allow4 set and the port set each: 500 out, 500 in (odd /24s sit between even ones,
    # so none merges with a neighbour)
    assert (deleted, created) == (1000, 1000)
    assert text.count("\t10.") == 2000
    netns.nft_file(tmp_path, nft_text(base))
    netns.nft_file(tmp_path, text)
    incremental = all_elements(netns)
    assert len(incremental[NFT_SET_V4]) == 5000
    assert str(gone[0].prefix) not in incremental[NFT_SET_V4]
    assert str(come[0].prefix) in incremental[NFT_SET_V4]
    netns.nft_file(tmp_path, nft_text(new))
    assert all_elements(netns) == incremental
