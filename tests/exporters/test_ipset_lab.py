"""The ipset export against the real `ipset restore`, inside a network namespace."""

from __future__ import annotations

import ipaddress

import pytest

from vpnreg.core.exporters import IPSET_V4, IPSET_V6, ExportFormat, render
from vpnreg.core.feed import AllowlistEntry, Network

from .conftest import Netns
from .sample import GENERATED, SAMPLE, entry

pytestmark = pytest.mark.lab

V1 = [entry("192.0.2.0/24", 1), entry("2001:db8:a::/48", 2), entry("203.0.113.0/25", 3)]
V2 = [entry("203.0.113.0/25", 3), entry("203.0.113.128/25", 4), entry("2001:db8:b::/48", 5)]


def restore(ns: Netns, entries: list[AllowlistEntry]) -> None:
    ns.run("ipset", "restore", stdin=render(ExportFormat.IPSET, entries, generated=GENERATED)[""])


def members(ns: Netns) -> dict[str, list[Network]]:
    """Every set in the namespace -> its members, from `ipset save`."""
    out: dict[str, list[Network]] = {}
    for line in ns.run("ipset", "save").splitlines():
        words = line.split()
        if words[0] == "create":
            out[words[1]] = []
        elif words[0] == "add":
            out[words[1]].append(ipaddress.ip_network(words[2]))
    return {name: sorted(nets, key=str) for name, nets in out.items()}


def nets(*texts: str) -> list[Network]:
    return sorted((ipaddress.ip_network(t) for t in texts), key=str)


def test_empty_registry_restores_into_an_empty_namespace(netns: Netns) -> None:
    restore(netns, [])
    assert members(netns) == {IPSET_V4: [], IPSET_V6: []}


def test_sample_restores_merged(netns: Netns) -> None:
    restore(netns, list(SAMPLE))
    assert members(netns) == {
        IPSET_V4: nets("192.0.2.0/24", "203.0.113.0/24"),
        IPSET_V6: nets("2001:db8:1::/48"),
    }


def test_v2_over_v1_swaps_in_the_new_members_only(netns: Netns) -> None:
    netns.run("ipset", "create", "other", "hash:net", "family", "inet")
    netns.run("ipset", "add", "other", "198.51.100.0/24")

    restore(netns, V1)
    assert members(netns) == {
        "other": nets("198.51.100.0/24"),
        IPSET_V4: nets("192.0.2.0/24", "203.0.113.0/25"),
        IPSET_V6: nets("2001:db8:a::/48"),
    }

    restore(netns, V2)
    # No scratch set is left behind and the unrelated set is untouched.
    assert members(netns) == {
        "other": nets("198.51.100.0/24"),
        IPSET_V4: nets("203.0.113.0/24"),
        IPSET_V6: nets("2001:db8:b::/48"),
    }


def test_restore_survives_a_scratch_set_left_by_an_interrupted_load(netns: Netns) -> None:
    netns.run("ipset", "create", f"{IPSET_V4}-new", "hash:net", "family", "inet",
              "maxelem", "1048576")  # fmt: skip
    netns.run("ipset", "add", f"{IPSET_V4}-new", "198.51.100.0/24")
    restore(netns, V1)
    assert members(netns) == {
        IPSET_V4: nets("192.0.2.0/24", "203.0.113.0/25"),
        IPSET_V6: nets("2001:db8:a::/48"),
    }


def test_whole_address_space_restores(netns: Netns) -> None:
    restore(netns, [entry("0.0.0.0/0", 1)])
    assert members(netns)[IPSET_V4] == nets("0.0.0.0/1", "128.0.0.0/1")
