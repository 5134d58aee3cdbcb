"""Renderers of the allowlist into plain formats for other tools (nft, ipset, Suricata, Zeek).

Every renderer is pure and deterministic: it sorts what it writes and reads no clock (the
generation time is passed in). The output is plain unsigned data; docs/exporters.md describes
each format and how to load it. Formats that cannot say a port range list the whole address of
a port-ranged entry: an export never leaves out a registered subscriber behind a shared address.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum

from vpnreg.core.feed import AllowlistEntry, Network, format_time
from vpnreg.core.feed.entry import protocol_names, time_text

#: The nftables table this export owns; the gateway agent's own table is `inet vpnreg`.
NFT_TABLE = "vpnreg_allow"
NFT_SET_V4 = "allow4"
NFT_SET_V6 = "allow6"
#: (address . domestic port) interval sets: exactly what is registered, port ranges included.
NFT_PORT_SET_V4 = "allow4_ports"
NFT_PORT_SET_V6 = "allow6_ports"

IPSET_V4 = "vpnreg_allow4"
IPSET_V6 = "vpnreg_allow6"
#: Suffix of the scratch set that is filled, then swapped with the live one.
IPSET_SCRATCH_SUFFIX = "-new"
#: Fixed because `create ... -exist` fails when the live set was made with another maxelem.
IPSET_MAXELEM = 1_048_576

#: Suricata reads category ids 0..59 and short names of at most 31 characters.
SURICATA_CATEGORY_ID = 1
SURICATA_CATEGORY = "VpnregAllowed"
SURICATA_CATEGORY_DESCRIPTION = "Registered VPN endpoint prefixes (vpnreg allowlist)"
#: The highest score Suricata accepts: a registered prefix is in the category for certain.
SURICATA_SCORE = 127

ZEEK_SOURCE = "vpnreg"
ZEEK_FIELDS = ("indicator", "indicator_type", "meta.source", "meta.desc")

#: Key of the main file in render()'s result; with `--out FILE` it is written to FILE.
MAIN_FILE = ""
#: Key of Suricata's categories file; with `--out FILE` it is written to FILE.categories.
CATEGORIES_FILE = ".categories"


class ExportFormat(StrEnum):
    JSON = "json"
    TXT = "txt"
    NFT = "nft"
    IPSET = "ipset"
    SURICATA_IPREP = "suricata-iprep"
    ZEEK_INTEL = "zeek-intel"


def file_suffixes(fmt: ExportFormat) -> tuple[str, ...]:
    """The keys render() returns for `fmt`: the main file first, then any companion files."""
    if fmt is ExportFormat.SURICATA_IPREP:
        return (MAIN_FILE, CATEGORIES_FILE)
    return (MAIN_FILE,)


def render(
    fmt: ExportFormat, entries: Sequence[AllowlistEntry], *, generated: dt.datetime
) -> dict[str, str]:
    """Render `entries` in `fmt`: file name suffix -> content (see file_suffixes).

    `generated` must be timezone-aware (else ValueError); it is written as the feed writes
    times (UTC with a Z) into the files that carry a header.
    """
    stamp = format_time(generated)
    canonical = sorted(set(entries), key=AllowlistEntry.encode)
    return _RENDERERS[ExportFormat(fmt)](canonical, stamp)


# -- prefix sets -------------------------------------------------------------------------------


def _prefix_key(network: Network) -> tuple[int, int, int]:
    return (network.version, int(network.network_address), network.prefixlen)


def registered_prefixes(entries: Iterable[AllowlistEntry]) -> list[Network]:
    """Every distinct registered prefix, IPv4 first, then by address and prefix length."""
    return sorted({entry.prefix for entry in entries}, key=_prefix_key)


def merged_prefixes(entries: Iterable[AllowlistEntry]) -> tuple[list[Network], list[Network]]:
    """(IPv4, IPv6): the fewest prefixes covering every registered one, overlaps and adjacent
    blocks merged, in address order."""
    v4 = [e.prefix for e in entries if isinstance(e.prefix, ipaddress.IPv4Network)]
    v6 = [e.prefix for e in entries if isinstance(e.prefix, ipaddress.IPv6Network)]
    return list(ipaddress.collapse_addresses(v4)), list(ipaddress.collapse_addresses(v6))


PortBox = tuple[Network, int, int]


def _merged_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Overlapping and adjacent port ranges merged, in order."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def port_boxes(entries: Iterable[AllowlistEntry], version: int) -> list[PortBox]:
    """(prefix, port lo, port hi) elements covering exactly the (address, domestic port) pairs
    the entries of one IP version register, pairwise disjoint (nft refuses some overlapping
    interval elements): a sweep over the address boundaries, the ports of each stretch merged,
    equal neighbouring stretches joined, each stretch written as its fewest prefixes."""
    chosen = [e for e in entries if e.prefix.version == version]
    # Entries of any port are the common case: their merged prefixes are disjoint already, and
    # the sweep is needed only around port-ranged ones.
    v4, v6 = merged_prefixes([e for e in chosen if e.any_port])
    whole = v4 if version == 4 else v6
    ranged = [(e.prefix, e.ports) for e in chosen if not e.any_port]
    if not ranged:
        return [(prefix, 0, 65535) for prefix in whole]
    starts: dict[int, list[tuple[int, int]]] = defaultdict(list)
    ends: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for prefix, ports in [*((p, (0, 65535)) for p in whole), *ranged]:
        starts[int(prefix.network_address)].append(ports)
        ends[int(prefix.broadcast_address) + 1].append(ports)
    active: Counter[tuple[int, int]] = Counter()
    stretches: list[tuple[int, int, tuple[tuple[int, int], ...]]] = []
    cuts = sorted(starts.keys() | ends.keys())
    for cut, following in itertools.pairwise(cuts):
        for ports in ends.get(cut, ()):
            active[ports] -= 1
        for ports in starts.get(cut, ()):
            active[ports] += 1
        merged = _merged_ranges(p for p, n in active.items() if n > 0)
        if not merged:
            continue
        if stretches and stretches[-1][1] == cut - 1 and stretches[-1][2] == merged:
            stretches[-1] = (stretches[-1][0], following - 1, merged)
        else:
            stretches.append((cut, following - 1, merged))
    address = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    boxes: list[PortBox] = []
    for first, last, ranges in stretches:
        for prefix in ipaddress.summarize_address_range(address(first), address(last)):
            boxes.extend((prefix, lo, hi) for lo, hi in ranges)
    return boxes


def _header(title: str, entries: Sequence[AllowlistEntry], stamp: str) -> list[str]:
    v4, v6 = merged_prefixes(entries)
    return [
        f"# vpnreg allowlist, {title}: plain data, unsigned",
        f"# generated {stamp}; {len(entries)} entries;"
        f" {len(v4)} IPv4 and {len(v6)} IPv6 prefixes after merging",
    ]


# -- json and txt ------------------------------------------------------------------------------


def _render_json(entries: Sequence[AllowlistEntry], stamp: str) -> dict[str, str]:
    document = {
        "generated": stamp,
        "count": len(entries),
        "entries": [entry.to_json() for entry in entries],
    }
    return {MAIN_FILE: json.dumps(document, indent=2) + "\n"}


def _render_txt(entries: Sequence[AllowlistEntry], stamp: str) -> dict[str, str]:
    # No header: many tools read such lists line by line and take every line for a prefix.
    return {MAIN_FILE: "".join(f"{prefix}\n" for prefix in registered_prefixes(entries))}


# -- nftables ----------------------------------------------------------------------------------


def _nft_set_elements(entries: Sequence[AllowlistEntry]) -> dict[str, list[str]]:
    """The elements of each of the export's sets, as nft writes them, in order: the merged
    prefixes of allow4/allow6 and the disjoint (prefix . port range) boxes."""
    v4, v6 = merged_prefixes(entries)
    return {
        NFT_SET_V4: [str(prefix) for prefix in v4],
        NFT_SET_V6: [str(prefix) for prefix in v6],
        **{
            name: [
                f"{prefix} . {lo}" if lo == hi else f"{prefix} . {lo}-{hi}"
                for prefix, lo, hi in port_boxes(entries, version)
            ]
            for name, version in ((NFT_PORT_SET_V4, 4), (NFT_PORT_SET_V6, 6))
        },
    }


def _nft_statement(verb: str, set_name: str, elements: Sequence[str]) -> list[str]:
    """`verb element` of `elements` into one set (no line for none: nft refuses `{ }`)."""
    if not elements:
        return []
    body = ",\n".join(f"\t{element}" for element in elements)
    return [f"{verb} element inet {NFT_TABLE} {set_name} {{", body, "}"]


def _render_nft(entries: Sequence[AllowlistEntry], stamp: str) -> dict[str, str]:
    sets = _nft_set_elements(entries)
    lines = [
        "#!/usr/sbin/nft -f",
        *_header("nftables", entries, stamp),
        f"# Load with `nft -f`: one transaction that declares table inet {NFT_TABLE} if it is",
        "# missing, empties its sets and fills them again. Chains you add to this table keep",
        "# their rules; nothing outside the table is touched. allow4/allow6: every registered",
        "# address; allow4_ports/allow6_ports: address . domestic port, exactly as registered",
        "# (a shared CGNAT address only for its registered port blocks).",
        f"table inet {NFT_TABLE} {{",
        f"\tset {NFT_SET_V4} {{",
        "\t\ttype ipv4_addr",
        "\t\tflags interval",
        "\t}",
        f"\tset {NFT_SET_V6} {{",
        "\t\ttype ipv6_addr",
        "\t\tflags interval",
        "\t}",
        f"\tset {NFT_PORT_SET_V4} {{",
        "\t\ttype ipv4_addr . inet_service",
        "\t\tflags interval",
        "\t}",
        f"\tset {NFT_PORT_SET_V6} {{",
        "\t\ttype ipv6_addr . inet_service",
        "\t\tflags interval",
        "\t}",
        "}",
        f"flush set inet {NFT_TABLE} {NFT_SET_V4}",
        f"flush set inet {NFT_TABLE} {NFT_SET_V6}",
        f"flush set inet {NFT_TABLE} {NFT_PORT_SET_V4}",
        f"flush set inet {NFT_TABLE} {NFT_PORT_SET_V6}",
        *(
            line
            for name, elements in sets.items()
            for line in _nft_statement("add", name, elements)
        ),
    ]
    return {MAIN_FILE: "\n".join(lines) + "\n"}


def render_nft_changes(
    old: Sequence[AllowlistEntry],
    new: Sequence[AllowlistEntry],
    *,
    generated: dt.datetime,
    what: str,
) -> tuple[str, int, int]:
    """An `nft -f` script that turns the sets of the nft export of `old` into those of `new`,
    and how many elements it deletes and creates. `what` says which states (a comment).

    The sets are compared element by element as the full export writes them, so the script
    touches only what changed (a registration added, removed or changed in a million: a few
    lines) and keeps every other element in place, with no moment without it. One transaction:
    every `delete element` first, then `create element` (an element that grows or shrinks never
    overlaps its old form). It declares nothing and applies only over the sets of `old`: a
    deletion of an element that is not there or a creation of one that is fails the whole
    transaction, and nothing changes (load a full export then).
    """
    stamp = format_time(generated)
    before = _nft_set_elements(sorted(set(old), key=AllowlistEntry.encode))
    after = _nft_set_elements(sorted(set(new), key=AllowlistEntry.encode))
    gone: dict[str, list[str]] = {}
    come: dict[str, list[str]] = {}
    for name in before:
        was, now = set(before[name]), set(after[name])
        gone[name] = [element for element in before[name] if element not in now]
        come[name] = [element for element in after[name] if element not in was]
    deleted = sum(len(v) for v in gone.values())
    created = sum(len(v) for v in come.values())
    lines = [
        "#!/usr/sbin/nft -f",
        f"# vpnreg allowlist, nftables changes: plain data, unsigned; {what}",
        f"# generated {stamp}; {len(new)} entries; {deleted} elements deleted, {created} created",
        f"# Load with `nft -f` over table inet {NFT_TABLE} as the export of the earlier state left",
        "# it: one transaction, all or nothing (`vpnreg feed export --format nft` reloads all).",
        *(
            line
            for name, elements in gone.items()
            for line in _nft_statement("delete", name, elements)
        ),
        *(
            line
            for name, elements in come.items()
            for line in _nft_statement("create", name, elements)
        ),
    ]
    return "\n".join(lines) + "\n", deleted, created


# -- ipset -------------------------------------------------------------------------------------


def _ipset_members(prefixes: Sequence[Network]) -> list[Network]:
    # hash:net refuses a /0, so the whole address space goes in as its two halves.
    out: list[Network] = []
    for prefix in prefixes:
        out.extend(prefix.subnets(1) if prefix.prefixlen == 0 else (prefix,))
    return out


def _ipset_block(live: str, family: str, prefixes: Sequence[Network]) -> list[str]:
    scratch = live + IPSET_SCRATCH_SUFFIX
    members = _ipset_members(prefixes)
    if len(members) > IPSET_MAXELEM:
        raise ValueError(f"{len(members)} prefixes exceed the ipset maxelem {IPSET_MAXELEM}")
    spec = f"hash:net family {family} maxelem {IPSET_MAXELEM}"
    return [
        # -exist and flush: a scratch set left over by an interrupted load is reused, not fatal.
        f"create {scratch} {spec} -exist",
        f"flush {scratch}",
        *(f"add {scratch} {member}" for member in members),
        f"create {live} {spec} -exist",
        f"swap {scratch} {live}",
        f"destroy {scratch}",
    ]


def _render_ipset(entries: Sequence[AllowlistEntry], stamp: str) -> dict[str, str]:
    v4, v6 = merged_prefixes(entries)
    lines = [
        *_header("ipset", entries, stamp),
        f"# Load with `ipset restore`: fills scratch sets, then swaps them with {IPSET_V4} and",
        f"# {IPSET_V6} (created if missing), so each live set changes in one step.",
        *_ipset_block(IPSET_V4, "inet", v4),
        *_ipset_block(IPSET_V6, "inet6", v6),
    ]
    return {MAIN_FILE: "\n".join(lines) + "\n"}


# -- Suricata IP reputation --------------------------------------------------------------------


def _render_suricata(entries: Sequence[AllowlistEntry], stamp: str) -> dict[str, str]:
    v4, v6 = merged_prefixes(entries)
    header = _header("Suricata IP reputation", entries, stamp)
    reputation = [
        *header,
        f"# <ip>,<category>,<score>; category {SURICATA_CATEGORY_ID} is defined in the"
        f" {CATEGORIES_FILE[1:]} file",
        *(f"{prefix},{SURICATA_CATEGORY_ID},{SURICATA_SCORE}" for prefix in [*v4, *v6]),
    ]
    categories = [
        *header,
        "# <id>,<short name>,<description>",
        f"{SURICATA_CATEGORY_ID},{SURICATA_CATEGORY},{SURICATA_CATEGORY_DESCRIPTION}",
    ]
    return {
        MAIN_FILE: "\n".join(reputation) + "\n",
        CATEGORIES_FILE: "\n".join(categories) + "\n",
    }


# -- Zeek intelligence -------------------------------------------------------------------------


def _zeek_description(entries: Iterable[AllowlistEntry]) -> str:
    parts = []
    for entry in sorted(entries, key=lambda e: e.registration_id):
        peers = " ".join(str(peer) for peer in entry.peers) or "any"
        lo, hi = entry.ports
        ports = "any" if entry.any_port else (f"{lo}" if lo == hi else f"{lo}-{hi}")
        protocols = " ".join(protocol_names(entry.protocols)) or "any"
        parts.append(
            f"vpnreg registration {entry.registration_id}"
            f" until {time_text(entry.valid_until)} (exclusive), ports {ports},"
            f" protocols {protocols}, peers {peers}"
        )
    return "; ".join(parts)


def _render_zeek(entries: Sequence[AllowlistEntry], stamp: str) -> dict[str, str]:
    # Zeek keeps one metadata record per indicator and source, so registrations of the same
    # prefix share one row whose description names them all.
    by_prefix: dict[Network, list[AllowlistEntry]] = defaultdict(list)
    for entry in entries:
        by_prefix[entry.prefix].append(entry)
    rows = [
        "\t".join((str(prefix), "Intel::SUBNET", ZEEK_SOURCE, _zeek_description(by_prefix[prefix])))
        for prefix in sorted(by_prefix, key=_prefix_key)
    ]
    lines = [
        *_header("Zeek intelligence", entries, stamp),
        "#fields\t" + "\t".join(ZEEK_FIELDS),
        *rows,
    ]
    return {MAIN_FILE: "\n".join(lines) + "\n"}


_RENDERERS: dict[ExportFormat, Callable[[Sequence[AllowlistEntry], str], dict[str, str]]] = {
    ExportFormat.JSON: _render_json,
    ExportFormat.TXT: _render_txt,
    ExportFormat.NFT: _render_nft,
    ExportFormat.IPSET: _render_ipset,
    ExportFormat.SURICATA_IPREP: _render_suricata,
    ExportFormat.ZEEK_INTEL: _render_zeek,
}
