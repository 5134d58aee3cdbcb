"""Longest-prefix match over many prefixes, batched with numpy.

Building: per family the (possibly nested) prefixes are flattened into disjoint intervals, each
carrying the index of the most specific prefix covering it (-1 for none). Looking up:
- IPv4, DIR-24-8: a 2^24-entry table indexed by the top 24 bits holds the answer, or for the
  /24 cells that a longer prefix splits, a pointer to a 256-entry block indexed by the low
  byte. A batch costs one or two numpy gathers.
- IPv6: a 2^24-entry table indexed by the top 24 bits holds the answer for buckets with no
  interval boundary inside, or a pointer to the bucket's run of interval starts, which is then
  binary-searched for all queries at once on the 64 bits after the bucket's (and on the last
  40 bits too only in buckets where prefixes longer than /88 start).
Small sets skip the 64 MiB tables and search the interval starts directly (`dense=False`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vpnreg.core.ipspace.addresses import Address, Network, parse_address

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
I32 = NDArray[np.int32]

_TOP_BITS = 24
_V4_LOW = 32 - _TOP_BITS
_V6_SHIFT = np.uint64(64 - _TOP_BITS)
_V6_LOW_MASK = np.uint64((1 << (64 - _TOP_BITS)) - 1)
#: Below this many intervals in a family the direct search beats building the tables.
_DENSE_FROM = 50_000
_MASK64 = (1 << 64) - 1
_U = TypeVar("_U", np.uint32, np.uint64)


def _concat_ranges(starts: I64, counts: I64) -> I64:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    offsets = np.repeat(starts - (ends - counts), counts)
    return offsets + np.arange(total, dtype=np.int64)


def _end_plus_one(hi: U64, lo: U64, host_bits: I64) -> tuple[U64, U64, NDArray[np.bool_]]:
    """(hi, lo) of the first address after each prefix, and whether that overflows 2^128."""
    small = host_bits < 64
    step_lo = np.where(
        small, np.left_shift(np.uint64(1), np.minimum(host_bits, 63).astype(np.uint64)), 0
    )
    new_lo = lo + step_lo.astype(np.uint64)
    carry = (new_lo < lo).astype(np.uint64)
    big_shift = np.clip(host_bits - 64, 0, 63).astype(np.uint64)
    step_hi = np.where(small, carry, np.left_shift(np.uint64(1), big_shift)).astype(np.uint64)
    step_hi = np.where(host_bits == 128, 0, step_hi).astype(np.uint64)
    new_hi = hi + step_hi
    overflow = (new_hi < hi) | (host_bits == 128)
    return new_hi, new_lo, overflow


def flatten(hi: U64, lo: U64, prefixlen: I64, index: I64, bits: int) -> tuple[U64, U64, I32]:
    """Disjoint intervals covering the whole family's space, as (start hi, start lo, owner).

    The owner of an interval is the index of the most specific prefix covering it, -1 for
    none; among identical prefixes the lowest index wins. Consecutive intervals never share
    an owner. The first interval starts at address 0.
    """
    order = np.lexsort((index, lo, hi, prefixlen))
    hi, lo, prefixlen, index = hi[order], lo[order], prefixlen[order], index[order]
    if len(order):
        first = np.ones(len(order), dtype=bool)
        first[1:] = (prefixlen[1:] != prefixlen[:-1]) | (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        hi, lo, prefixlen, index = hi[first], lo[first], prefixlen[first], index[first]
    n = len(hi)
    end_hi, end_lo, end_top = _end_plus_one(hi, lo, bits - prefixlen)
    zero = np.zeros(1, dtype=np.uint64)
    all_top = np.concatenate([np.zeros(n + 1, dtype=np.uint8), end_top.astype(np.uint8)])
    all_hi = np.concatenate([zero, hi, end_hi])
    all_lo = np.concatenate([zero, lo, end_lo])
    by_value = np.lexsort((all_lo, all_hi, all_top))
    s_top, s_hi, s_lo = all_top[by_value], all_hi[by_value], all_lo[by_value]
    new = np.ones(len(by_value), dtype=bool)
    new[1:] = (s_top[1:] != s_top[:-1]) | (s_hi[1:] != s_hi[:-1]) | (s_lo[1:] != s_lo[:-1])
    rank_sorted = np.cumsum(new) - 1
    rank = np.empty(len(by_value), dtype=np.int64)
    rank[by_value] = rank_sorted
    start_rank, end_rank = rank[1 : n + 1], rank[n + 1 :]
    keep = new & (s_top == 0)
    b_hi, b_lo = s_hi[keep], s_lo[keep]
    owner = np.full(len(b_hi) + 1, -1, dtype=np.int32)
    # Paint from the widest prefixes to the most specific: within one length prefixes are
    # disjoint, and a longer one always lies inside (or apart from) a shorter one.
    for length in np.flatnonzero(np.bincount(prefixlen, minlength=1)):
        at = np.flatnonzero(prefixlen == length)
        counts = end_rank[at] - start_rank[at]
        cells = _concat_ranges(start_rank[at], counts)
        owner[cells] = np.repeat(index[at].astype(np.int32), counts)
    owner = owner[: len(b_hi)]
    change = np.ones(len(owner), dtype=bool)
    change[1:] = owner[1:] != owner[:-1]
    return b_hi[change], b_lo[change], owner[change]


class _V4Table:
    """DIR-24-8 tables for IPv4 (see the module docstring)."""

    def __init__(self, starts: U64, owner: I32) -> None:
        cells = 1 << _TOP_BITS
        first_cell = (starts + np.uint64(255)) >> np.uint64(_V4_LOW)
        counts = np.diff(np.append(first_cell, np.uint64(cells))).astype(np.int64)
        level1 = np.repeat(owner, counts)
        split = _sorted_unique(starts[(starts & np.uint64(255)) != 0] >> np.uint64(_V4_LOW))
        k = len(split)
        # Position of each interval start in the concatenated 256-entry blocks of split cells.
        cell = starts >> np.uint64(_V4_LOW)
        before = np.searchsorted(split, cell, side="left")
        in_split = np.zeros(len(starts), dtype=bool)
        if k:
            in_split = split[np.minimum(before, k - 1)] == cell
        position = before.astype(np.int64) * 256 + np.where(
            in_split, (starts & np.uint64(255)).astype(np.int64), 0
        )
        counts2 = np.diff(np.append(position, k * 256))
        level2 = np.repeat(owner, counts2)
        # A split cell holds -2 - (offset of its block in level2), so that the level-2 index
        # is low byte - entry - 2 with no second lookup of the block number.
        wide: I64 = level1.astype(np.int64)
        wide[split.astype(np.int64)] = -2 - np.arange(k, dtype=np.int64) * 256
        self.level1 = wide
        self.level2: I32 = level2

    def lookup(self, addresses: NDArray[np.uint32]) -> I64:
        # Written for speed: every fresh 10M-element array costs page faults, so the output
        # doubles as the index array and the second level touches only the split cells.
        found = np.empty(len(addresses), dtype=np.int64)
        np.right_shift(addresses, np.uint32(_V4_LOW), out=found)
        np.take(self.level1, found, out=found, mode="clip")
        pointer = np.flatnonzero(found < -1)
        if len(pointer):
            index = found[pointer]
            np.subtract(addresses[pointer] & np.uint32(255), index, out=index)
            index -= 2
            found[pointer] = np.take(self.level2, index, mode="clip")
        return found


class _SortedStarts:
    """Interval starts as two uint64 columns, binary-searched for a whole batch at once."""

    def __init__(self, hi: U64, lo: U64, owner: I32) -> None:
        self.hi, self.lo, self.owner = hi, lo, owner

    def search(self, q_hi: U64, q_lo: U64, base: I64, size: I64) -> I32:
        """Owner of the last start <= query within starts[base : base + size] (base <= query)."""
        result = np.empty(len(q_hi), dtype=np.int32)
        todo = np.arange(len(q_hi), dtype=np.int64)
        while len(todo):
            done = size <= 1
            if done.any():
                result[todo[done]] = self.owner[base[done]]
                keep = ~done
                todo, q_hi, q_lo, base, size = (
                    todo[keep],
                    q_hi[keep],
                    q_lo[keep],
                    base[keep],
                    size[keep],
                )
                if not len(todo):
                    break
            half = size >> 1
            middle = base + half
            m_hi = self.hi[middle]
            below = (m_hi < q_hi) | ((m_hi == q_hi) & (self.lo[middle] <= q_lo))
            base = np.where(below, middle, base)
            size = size - half
        return result


class _V6Table:
    """Top-24-bit bucket table over the sorted IPv6 interval starts.

    Inside a bucket the top 24 bits are equal, so a start is compared through its next 64 bits
    (`key`); only buckets holding a start with any of the last 40 bits set (prefixes longer
    than /88) need the remaining bits (`low`) as well, and they are searched apart.
    """

    def __init__(self, hi: U64, lo: U64, owner: I32) -> None:
        self.owner = owner
        self.key: U64 = (hi << np.uint64(_TOP_BITS)) | (lo >> _V6_SHIFT)
        self.low: U64 = lo & _V6_LOW_MASK
        buckets = 1 << _TOP_BITS
        aligned = ((hi & _V6_LOW_MASK) == 0) & (lo == 0)
        first_bucket = (hi >> _V6_SHIFT) + (~aligned).astype(np.uint64)
        counts = np.diff(np.append(first_bucket, np.uint64(buckets))).astype(np.int64)
        level1 = np.repeat(owner, counts).astype(np.int64)
        inside = np.flatnonzero(~aligned)
        inside_bucket = hi[inside] >> _V6_SHIFT
        bucket = _sorted_unique(inside_bucket)
        first = np.searchsorted(inside_bucket, bucket, side="left")
        count = np.diff(np.append(first, len(inside_bucket)))
        # The run for a bucket starts at the interval holding the bucket's first address; that
        # entry (maybe from an earlier bucket) is never compared, only the ones after it.
        self.base: I64 = inside[first] - 1
        self.size: I64 = count.astype(np.int64) + 1
        needs_low = np.add.reduceat(self.low[inside] != 0, first) > 0 if len(first) else first
        self.exact: NDArray[np.bool_] = np.asarray(needs_low, dtype=bool)
        level1[bucket.astype(np.int64)] = -2 - np.arange(len(bucket), dtype=np.int64)
        self.level1: I64 = level1

    def lookup(self, hi: U64, lo: U64) -> I64:
        found = np.empty(len(hi), dtype=np.int64)
        np.right_shift(hi, _V6_SHIFT, out=found, casting="unsafe")
        np.take(self.level1, found, out=found, mode="clip")
        pointer = np.flatnonzero(found < -1)
        if not len(pointer):
            return found
        run = found[pointer]
        np.subtract(-2, run, out=run)
        q_hi, q_lo = hi[pointer], lo[pointer]
        key = (q_hi << np.uint64(_TOP_BITS)) | (q_lo >> _V6_SHIFT)
        base, size = self.base[run], self.size[run]
        exact = self.exact[run]
        if exact.any():
            plain = np.flatnonzero(~exact)
            precise = np.flatnonzero(exact)
            base[plain] = self._search(key[plain], None, base[plain], size[plain])
            base[precise] = self._search(
                key[precise], q_lo[precise] & _V6_LOW_MASK, base[precise], size[precise]
            )
        else:
            base = self._search(key, None, base, size)
        found[pointer] = self.owner[base]
        return found

    def _search(self, key: U64, low: U64 | None, base: I64, size: I64) -> I64:
        """Index of the last start <= query in each run [base, base + size) (base excluded
        from comparisons: it holds the bucket's first address)."""
        if not len(key):
            return base
        half = np.empty_like(size)
        middle = np.empty_like(base)
        while True:
            np.right_shift(size, 1, out=half)
            if not half.any():
                return base
            np.add(base, half, out=middle)
            start = np.take(self.key, middle, mode="clip")
            below = start <= key if low is None else self._below(start, middle, key, low)
            half *= below
            base += half
            size -= np.right_shift(size, 1)

    def _below(self, start: U64, middle: I64, key: U64, low: U64) -> NDArray[np.bool_]:
        start_low: U64 = np.take(self.low, middle, mode="clip")
        below: NDArray[np.bool_] = (start < key) | ((start == key) & (start_low <= low))
        return below


class _Direct:
    """No tables: every query binary-searches all interval starts (small sets)."""

    def __init__(self, hi: U64, lo: U64, owner: I32) -> None:
        self.starts = _SortedStarts(hi, lo, owner)
        self.count = len(hi)

    def lookup(self, hi: U64, lo: U64) -> I64:
        n = len(hi)
        base = np.zeros(n, dtype=np.int64)
        size = np.full(n, self.count, dtype=np.int64)
        return self.starts.search(hi, lo, base, size).astype(np.int64)


def _as_uint(values: ArrayLike, dtype: type[_U], name: str) -> NDArray[_U]:
    """`values` as an array of `dtype`, refusing anything that would wrap silently."""
    array = np.asarray(values)
    if array.dtype == dtype:
        return array
    if array.size == 0:
        return array.astype(dtype)
    if array.dtype.kind not in "ui":
        raise TypeError(f"{name} must hold unsigned integers, not {array.dtype}")
    if int(array.min()) < 0 or int(array.max()) > int(np.iinfo(dtype).max):
        raise ValueError(f"{name} holds values outside {np.dtype(dtype).name}")
    return array.astype(dtype)


_Columns = tuple[U64, U64, I64, I64]


def _columns(values: list[int], lengths: I64, index: I64, version: int) -> _Columns:
    """(hi, lo, prefix length, index) columns of the prefixes of one family."""
    chosen = [values[i] for i in index.tolist()]
    if version == 4:
        lo = np.array(chosen, dtype=np.uint64)
        hi = np.zeros_like(lo)
    else:
        hi = np.array([v >> 64 for v in chosen], dtype=np.uint64)
        lo = np.array([v & _MASK64 for v in chosen], dtype=np.uint64)
    return hi, lo, lengths[index], index.astype(np.int64)


def _flatten_columns(columns: _Columns, bits: int) -> tuple[U64, U64, I32]:
    return flatten(*columns, bits)


def _sorted_unique(values: U64) -> U64:
    """np.unique for an already sorted array (np.unique hashes, which is slower here)."""
    if not len(values):
        return values
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _wants_tables(owner: I32, dense: bool | None) -> bool:
    return len(owner) >= _DENSE_FROM if dense is None else dense


class PrefixLookup:
    """Longest-prefix match returning the index of the matching prefix, or -1.

    Prefixes may nest; among identical prefixes the lowest index wins. `dense` forces (True) or
    avoids (False) the 2^24-entry tables; by default they are built for large sets only.
    """

    def __init__(self, prefixes: Sequence[Network], *, dense: bool | None = None) -> None:
        self._count = len(prefixes)
        # Comprehensions rather than one loop: this is most of the build time for 1M prefixes.
        values = [int(network.network_address) for network in prefixes]
        lengths = np.fromiter((n.prefixlen for n in prefixes), np.int64, len(prefixes))
        is_v6 = np.fromiter((n.version == 6 for n in prefixes), bool, len(prefixes))
        columns = {4: _columns(values, lengths, np.flatnonzero(~is_v6), 4)}
        columns[6] = _columns(values, lengths, np.flatnonzero(is_v6), 6)
        self._build(columns, dense)

    @classmethod
    def from_columns(
        cls,
        *,
        is_v6: NDArray[np.bool_],
        hi: U64,
        lo: U64,
        prefixlen: I64,
        dense: bool | None = None,
    ) -> PrefixLookup:
        """The lookup of prefixes given as columns, without a Network object each (a feed's
        records hold a million): prefix i is `hi[i] << 64 | lo[i]` (IPv4: the address in
        `lo`, `hi` 0) with `prefixlen[i]` bits, host bits zero; lookups return i."""
        made = cls.__new__(cls)
        made._count = len(is_v6)
        columns = {}
        for version, chosen in ((4, np.flatnonzero(~is_v6)), (6, np.flatnonzero(is_v6))):
            columns[version] = (
                np.asarray(hi[chosen], dtype=np.uint64),
                np.asarray(lo[chosen], dtype=np.uint64),
                np.asarray(prefixlen[chosen], dtype=np.int64),
                chosen.astype(np.int64),
            )
        made._build(columns, dense)
        return made

    def _build(self, columns: dict[int, _Columns], dense: bool | None) -> None:
        v4 = _flatten_columns(columns[4], 32)
        v6 = _flatten_columns(columns[6], 128)
        self._v4: _V4Table | _Direct = (
            _V4Table(v4[1], v4[2]) if _wants_tables(v4[2], dense) else _Direct(*v4)
        )
        self._v6: _V6Table | _Direct = (
            _V6Table(*v6) if _wants_tables(v6[2], dense) else _Direct(*v6)
        )

    def __len__(self) -> int:
        return self._count

    def lookup(self, address: Address | str) -> int:
        """Index of the longest prefix containing `address`, or -1."""
        return int(self.lookup_many([address])[0])

    def lookup_v4(self, addresses: NDArray[np.uint32]) -> I64:
        """Indexes (or -1) for IPv4 addresses given as uint32 integers."""
        values = _as_uint(addresses, np.uint32, "addresses")
        if isinstance(self._v4, _V4Table):
            return self._v4.lookup(values)
        wide = values.astype(np.uint64)
        return self._v4.lookup(np.zeros_like(wide), wide)

    def lookup_v6(self, hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> I64:
        """Indexes (or -1) for IPv6 addresses given as their high and low 64-bit halves."""
        q_hi = _as_uint(hi, np.uint64, "hi")
        q_lo = _as_uint(lo, np.uint64, "lo")
        if q_hi.shape != q_lo.shape:
            raise ValueError("hi and lo must have the same shape")
        return self._v6.lookup(q_hi, q_lo)

    def lookup_many(self, addresses: Sequence[Address | str]) -> I64:
        """Indexes (or -1) for addresses of either family, as objects or text."""
        parsed = [a if not isinstance(a, str) else parse_address(a) for a in addresses]
        result = np.full(len(parsed), -1, dtype=np.int64)
        v4 = [i for i, a in enumerate(parsed) if isinstance(a, ipaddress.IPv4Address)]
        v6 = [i for i, a in enumerate(parsed) if isinstance(a, ipaddress.IPv6Address)]
        if v4:
            values = np.array([int(parsed[i]) for i in v4], dtype=np.uint32)
            result[v4] = self.lookup_v4(values)
        if v6:
            ints = [int(parsed[i]) for i in v6]
            hi = np.array([x >> 64 for x in ints], dtype=np.uint64)
            lo = np.array([x & _MASK64 for x in ints], dtype=np.uint64)
            result[v6] = self.lookup_v6(hi, lo)
        return result
