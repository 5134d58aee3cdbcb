"""Set algebra over prefixes: collapse, overlap, containment and difference.

Everything works on inclusive integer intervals per address family and turns the result back
into the fewest CIDR blocks, so the cost is a sort, not a walk over addresses.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Sequence

from vpnreg.core.ipspace.addresses import Address, Network, bounds

_Interval = tuple[int, int]
_BITS = {4: 32, 6: 128}


def _by_family(prefixes: Iterable[Network]) -> dict[int, list[_Interval]]:
    families: dict[int, list[_Interval]] = {4: [], 6: []}
    for network in prefixes:
        families[network.version].append(bounds(network))
    return families


def _merge(intervals: list[_Interval]) -> list[_Interval]:
    """Sorted, disjoint, non-adjacent intervals covering the same addresses."""
    merged: list[_Interval] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _to_networks(version: int, intervals: Iterable[_Interval]) -> list[Network]:
    """The fewest CIDR blocks exactly covering each interval, in address order."""
    bits = _BITS[version]
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    networks: list[Network] = []
    for first, last in intervals:
        start = first
        while start <= last:
            align = (start & -start).bit_length() - 1 if start else bits
            fit = (last - start + 1).bit_length() - 1
            size = min(align, fit)
            networks.append(make((start, bits - size)))
            start += 1 << size
    return networks


def collapse(prefixes: Iterable[Network]) -> list[Network]:
    """The minimal sorted list of prefixes covering the same space (IPv4 first, then IPv6)."""
    families = _by_family(prefixes)
    return [net for version in (4, 6) for net in _to_networks(version, _merge(families[version]))]


def overlaps(a: Network, b: Network) -> bool:
    """True when the two prefixes share an address (never across families)."""
    if a.version != b.version:
        return False
    a_first, a_last = bounds(a)
    b_first, b_last = bounds(b)
    return a_first <= b_last and b_first <= a_last


def overlapping_pairs(prefixes: Sequence[Network]) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, of prefixes that overlap, sorted.

    Two CIDR blocks overlap only when one contains the other, so after sorting by start (widest
    first) a stack of the blocks still open holds exactly the ones containing the next block.
    The cost is the sort plus the number of pairs reported.
    """
    order = sorted(
        range(len(prefixes)),
        key=lambda i: (prefixes[i].version, *_start_widest_first(prefixes[i]), i),
    )
    pairs: list[tuple[int, int]] = []
    stack: list[tuple[int, int, int]] = []  # (version, last address, index)
    for i in order:
        network = prefixes[i]
        first, last = bounds(network)
        while stack and (stack[-1][0] != network.version or stack[-1][1] < first):
            stack.pop()
        pairs.extend((min(j, i), max(j, i)) for _, _, j in stack)
        stack.append((network.version, last, i))
    pairs.sort()
    return pairs


def _start_widest_first(network: Network) -> tuple[int, int]:
    return int(network.network_address), network.prefixlen


def contains(prefixes: Iterable[Network], item: Network | Address) -> bool:
    """True when every address of `item` lies in the union of `prefixes`."""
    if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
        first = last = int(item)
    else:
        first, last = bounds(item)
    merged = _merge(_by_family(prefixes)[item.version])
    position = bisect.bisect_right(merged, (first, 1 << 129)) - 1
    return position >= 0 and merged[position][1] >= last


def difference(a: Iterable[Network], b: Iterable[Network]) -> list[Network]:
    """The address space in `a` and not in `b`, collapsed (IPv4 first, then IPv6)."""
    minuend, subtrahend = _by_family(a), _by_family(b)
    result: list[Network] = []
    for version in (4, 6):
        keep: list[_Interval] = []
        holes = _merge(subtrahend[version])
        h = 0
        for first, last in _merge(minuend[version]):
            start = first
            while h < len(holes) and holes[h][1] < start:
                h += 1
            k = h
            while k < len(holes) and holes[k][0] <= last:
                if holes[k][0] > start:
                    keep.append((start, holes[k][0] - 1))
                start = max(start, holes[k][1] + 1)
                k += 1
            if start <= last:
                keep.append((start, last))
        result.extend(_to_networks(version, keep))
    return result
