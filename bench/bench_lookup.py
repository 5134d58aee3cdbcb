"""Benchmark of PrefixLookup (core/ipspace) against pytricia on the same nested prefixes.

1M IPv4 and 200k IPv6 random prefixes, nested (wide parents with more specific children
inside), 10M random addresses per family of which about half are drawn from inside the
prefixes. Batched lookups are timed (best of 3) and every answer pytricia gives is checked
against ours.
"""

from __future__ import annotations

import gc
import ipaddress
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytricia

from bench.report import write_section
from vpnreg.core.ipspace import Network, PrefixLookup

SEED = 20260115
N_V4 = 1_000_000
N_V6 = 200_000
N_ADDRESSES = 10_000_000
#: pytricia manages well under 1 M lookups/s on these tries: it runs on the first 1M only.
N_PYTRICIA = 1_000_000
TARGET_V4 = 30e6
TARGET_V4_RATIO = 40.0
TARGET_V6 = 5e6


def _nested(
    rng: np.random.Generator, bits: int, count: int, plan: list[tuple[float, int, int]]
) -> tuple[list[int], list[int]]:
    """`count` prefixes as (value, length); each plan row is (share, min len, max len).

    Rows after the first put 70% of their prefixes inside a prefix drawn from earlier rows,
    so the set nests several levels deep (and has a few exact duplicates).
    """
    values: list[int] = []
    lengths: list[int] = []
    for row, (share, low, high) in enumerate(plan):
        n = int(count * share) if row < len(plan) - 1 else count - len(values)
        new_lengths = rng.integers(low, high + 1, size=n)
        for j in range(n):
            length = int(new_lengths[j])
            value = int.from_bytes(rng.bytes(bits // 8))
            if row and rng.random() < 0.7:
                k = int(rng.integers(0, len(values)))
                parent, parent_length = values[k], lengths[k]
                if parent_length < length:
                    host = bits - parent_length
                    value = parent | (value & ((1 << host) - 1))
            if bits == 128:
                value = (0x2000 << 112) | (value & ((1 << 125) - 1))  # global unicast
            values.append(value >> (bits - length) << (bits - length) if length else 0)
            lengths.append(length)
    return values, lengths


def _addresses(
    rng: np.random.Generator, bits: int, values: list[int], lengths: list[int], n: int
) -> list[int]:
    """n addresses: half inside a random prefix, half uniformly random (global unicast)."""
    inside = rng.integers(0, len(values), size=n // 2)
    out = []
    for k in inside:
        host = bits - lengths[k]
        out.append(values[k] | (int.from_bytes(rng.bytes(bits // 8)) & ((1 << host) - 1)))
    for _ in range(n - n // 2):
        value = int.from_bytes(rng.bytes(bits // 8))
        out.append((0x2000 << 112) | (value & ((1 << 125) - 1)) if bits == 128 else value)
    order = rng.permutation(n)
    return [out[i] for i in order]


def _best_of(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _pytricia(bits: int, prefixes: list[str]) -> Any:
    trie = pytricia.PyTricia(bits)
    # Reversed so that among duplicates the lowest index is written last and wins, as ours.
    for i in range(len(prefixes) - 1, -1, -1):
        trie[prefixes[i]] = i
    return trie


def main() -> None:
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    v4_values, v4_lengths = _nested(rng, 32, N_V4, [(0.05, 16, 20), (0.55, 21, 24), (0.40, 25, 32)])
    v6_values, v6_lengths = _nested(
        rng, 128, N_V6, [(0.05, 24, 36), (0.55, 37, 48), (0.35, 49, 64), (0.05, 65, 128)]
    )
    prefixes: list[Network] = [
        ipaddress.IPv4Network((v, n)) for v, n in zip(v4_values, v4_lengths, strict=True)
    ]
    prefixes += [ipaddress.IPv6Network((v, n)) for v, n in zip(v6_values, v6_lengths, strict=True)]
    n_addr = N_ADDRESSES
    # Addresses drawn with numpy for speed: half inside a random prefix, half anywhere.
    a4 = _v4_addresses(rng, np.array(v4_values, np.uint64), np.array(v4_lengths), n_addr)
    hi6, lo6 = _v6_addresses(rng, v6_values, v6_lengths, n_addr)
    print(f"data generated in {time.perf_counter() - t0:.1f}s", flush=True)

    build, lookup = _best_of(1, lambda: PrefixLookup(prefixes))
    print(f"build {build:.2f}s", flush=True)
    t4, ours4 = _best_of(3, lambda: lookup.lookup_v4(a4))
    t6, ours6 = _best_of(3, lambda: lookup.lookup_v6(hi6, lo6))
    print(f"ours v4 {n_addr / t4 / 1e6:.1f} M/s, v6 {n_addr / t6 / 1e6:.1f} M/s", flush=True)
    peak_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10

    # pytricia: the same prefixes, the same addresses (as ints for IPv4, packed bytes for
    # IPv6, its cheapest key forms; the key conversion is not timed).
    t_build_pt = time.perf_counter()
    trie4 = _pytricia(32, [str(p) for p in prefixes[:N_V4]])
    trie6 = _pytricia(128, [str(p) for p in prefixes[N_V4:]])
    t_build_pt = time.perf_counter() - t_build_pt
    n_pt = N_PYTRICIA
    v4_keys = a4[:n_pt].tolist()
    v6_keys = [
        ((h << 64) | low).to_bytes(16)
        for h, low in zip(hi6[:n_pt].tolist(), lo6[:n_pt].tolist(), strict=True)
    ]
    get4, get6 = trie4.get, trie6.get
    pt4_time, pt4 = _best_of(3, lambda: [get4(k, -1) for k in v4_keys])
    pt6_time, pt6 = _best_of(3, lambda: [get6(k, -1) for k in v6_keys])
    pt4_offsets = np.array(pt4, dtype=np.int64)
    pt6_offsets = np.array(pt6, dtype=np.int64) + (np.array(pt6, dtype=np.int64) >= 0) * N_V4
    equal4 = bool(np.array_equal(pt4_offsets, ours4[:n_pt]))
    equal6 = bool(np.array_equal(pt6_offsets, ours6[:n_pt]))
    hits4, hits6 = float((ours4 >= 0).mean()), float((ours6 >= 0).mean())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10

    rate4, rate6 = n_addr / t4, n_addr / t6
    pt_rate4, pt_rate6 = n_pt / pt4_time, n_pt / pt6_time
    ratio4, ratio6 = rate4 / pt_rate4, rate6 / pt_rate6
    print(f"pytricia v4 {pt_rate4 / 1e6:.2f} M/s, v6 {pt_rate6 / 1e6:.2f} M/s")
    print(f"equal v4 {equal4} v6 {equal6}; hits v4 {hits4:.1%} v6 {hits6:.1%}")
    print(f"ratio v4 {ratio4:.1f}x v6 {ratio6:.1f}x; peak RSS {peak:.0f} MiB")
    if not (equal4 and equal6):
        raise SystemExit("PrefixLookup disagrees with pytricia")

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    body = f"""
Data: {N_V4:,} IPv4 and {N_V6:,} IPv6 random prefixes with nesting (IPv4: 5% /16-/20, 55%
/21-/24, 40% /25-/32; IPv6: /24-/36 parents, /37-/64 and 5% /65-/128 children; 70% of each
non-first tier drawn inside an earlier prefix). {n_addr:,} random addresses per family, about
half drawn from inside the prefixes ({hits4:.0%} of IPv4 and {hits6:.0%} of IPv6 lookups hit).
Batched lookups (`lookup_v4`, `lookup_v6`) on all {n_addr:,} addresses, best of 3.
pytricia is too slow on these tries for 3 runs of 10M (see its rate below), so
it ran in the same run on a sample, the first {n_pt:,} addresses of each family (keys as int
for IPv4, packed bytes for IPv6, converted before timing; one `get` per address, best of 3),
and every one of its answers was compared with ours: equal for IPv4: **{equal4}**, IPv6:
**{equal6}**. Rates are per address, so the ratios compare like with like.

| | IPv4 | IPv6 |
|---|---:|---:|
| build `PrefixLookup` (both families, from `ip_network` objects) | {build:.2f} s | |
| PrefixLookup batched | {rate4 / 1e6:.1f} M/s | {rate6 / 1e6:.1f} M/s |
| pytricia (`get` per address) | {pt_rate4 / 1e6:.2f} M/s | {pt_rate6 / 1e6:.2f} M/s |
| ratio to pytricia | {ratio4:.0f}x | {ratio6:.0f}x |
| pytricia build (both families) | {t_build_pt:.2f} s | |

Peak RSS (getrusage): {peak_ours:.0f} MiB after building and querying PrefixLookup with the data
sets, {peak:.0f} MiB at the end (pytricia and its Python key lists included).

Targets: IPv4 >= 30 M lookups/s: **{met(rate4 >= TARGET_V4)}**; IPv4 >= 40x pytricia:
**{met(ratio4 >= TARGET_V4_RATIO)}**; IPv6 >= 5 M lookups/s: **{met(rate6 >= TARGET_V6)}**.
"""
    write_section("lookup", "Prefix lookup (core/ipspace)", body)


def _v4_addresses(
    rng: np.random.Generator, values: np.ndarray, lengths: np.ndarray, n: int
) -> np.ndarray:
    k = rng.integers(0, len(values), size=n // 2)
    host_mask = (np.uint64(1) << (32 - lengths[k]).astype(np.uint64)) - np.uint64(1)
    inside = values[k] | (rng.integers(0, 2**32, size=n // 2, dtype=np.uint64) & host_mask)
    anywhere = rng.integers(0, 2**32, size=n - n // 2, dtype=np.uint64)
    out = np.concatenate([inside, anywhere]).astype(np.uint32)
    return out[rng.permutation(n)]


def _v6_addresses(
    rng: np.random.Generator, values: list[int], lengths: list[int], n: int
) -> tuple[np.ndarray, np.ndarray]:
    p_hi = np.array([v >> 64 for v in values], dtype=np.uint64)
    p_lo = np.array([v & (2**64 - 1) for v in values], dtype=np.uint64)
    host = 128 - np.array(lengths, dtype=np.int64)
    k = rng.integers(0, len(values), size=n // 2)
    h = host[k]
    r_hi = rng.integers(0, 2**64, size=n // 2, dtype=np.uint64)
    r_lo = rng.integers(0, 2**64, size=n // 2, dtype=np.uint64)
    hi_mask = np.where(
        h > 64, (np.uint64(1) << np.clip(h - 64, 0, 63).astype(np.uint64)) - np.uint64(1), 0
    ).astype(np.uint64)
    hi_mask = np.where(h >= 128, np.uint64(2**64 - 1), hi_mask)
    lo_mask = np.where(
        h >= 64,
        np.uint64(2**64 - 1),
        (np.uint64(1) << np.clip(h, 0, 63).astype(np.uint64)) - np.uint64(1),
    ).astype(np.uint64)
    in_hi = p_hi[k] | (r_hi & hi_mask)
    in_lo = p_lo[k] | (r_lo & lo_mask)
    m = n - n // 2
    any_hi = (rng.integers(0, 2**64, size=m, dtype=np.uint64) >> np.uint64(3)) | np.uint64(
        0x2000 << 48
    )
    any_lo = rng.integers(0, 2**64, size=m, dtype=np.uint64)
    order = rng.permutation(n)
    return np.concatenate([in_hi, any_hi])[order], np.concatenate([in_lo, any_lo])[order]


if __name__ == "__main__":
    main()
