"""The allowlist index: a RegistrationIndex over a feed's entries, built once per feed state and
never changed afterwards (a feed update builds a new one and swaps the reference). The gateway
agent decides flows with it; the registry's public lookup answers from it (ADR 0014).

Built from the feed's records directly (ADR 0011): rows are in canonical order, whose first
field is the prefix's 18-byte encoding, so the registrations of one prefix are neighbours and
the distinct prefixes a sorted array. Longest-prefix match comes from `PrefixLookup` built from
those prefixes as numpy columns; a row becomes a `Registration` only when a lookup lands on it
(a million entries are never decoded into a million objects). A valid registry never publishes
nested prefixes, but the index stays correct if one does: after the most specific match, the
shorter registered prefixes containing the address are found by probing the (few) distinct
prefix lengths below it, so `covering` returns every registration covering an address, most
specific first, then by registration id.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from vpnreg.core.feed import NETWORK_SIZE, AllowlistEntry, EntryTable, encode_network
from vpnreg.core.ipspace import PrefixLookup
from vpnreg.core.policy import Address, BlockKey, Registration, lifted_by

_KEY = np.dtype(f"S{NETWORK_SIZE}")
_LOW32 = np.uint64(0xFFFFFFFF)
_FAMILY_V6 = 6


class AllowlistIndex:
    """Immutable index of registrations by prefix; implements core.policy.RegistrationIndex."""

    __slots__ = (
        "_cache",
        "_count",
        "_keys",
        "_lengths",
        "_lookup",
        "_prefix_len",
        "_row",
        "_starts",
    )

    def __init__(self, registrations: Iterable[Registration]) -> None:
        """An index of Registration values (tools and tests; the gateway uses from_entries)."""
        rows = sorted(registrations, key=lambda r: (encode_network(r.prefix), r.registration_id))
        keys = np.array([encode_network(r.prefix) for r in rows], dtype=_KEY)
        self._setup(keys, rows.__getitem__)

    @classmethod
    def from_entries(cls, entries: EntryTable | Iterable[AllowlistEntry]) -> AllowlistIndex:
        """The index of a feed's entries, from their records (no object per entry)."""
        table = entries if isinstance(entries, EntryTable) else EntryTable.from_entries(entries)
        made = cls.__new__(cls)
        made._setup(table.prefix_keys(), lambda row: registration(table.entry(row)))
        return made

    @classmethod
    def empty(cls) -> AllowlistIndex:
        return cls(())

    def _setup(self, keys: npt.NDArray[np.bytes_], row: Callable[[int], Registration]) -> None:
        """`keys`: each row's prefix encoding, sorted (equal prefixes adjacent, by id)."""
        self._count = len(keys)
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        starts = np.flatnonzero(first)
        self._keys = keys[starts]
        self._starts = np.append(starts, len(keys))
        octets = self._keys.view(np.uint8).reshape(len(self._keys), NETWORK_SIZE)
        is_v6 = octets[:, 0] == _FAMILY_V6
        hi = np.ascontiguousarray(octets[:, 1:9]).view(">u8").ravel().astype(np.uint64)
        lo = np.ascontiguousarray(octets[:, 9:17]).view(">u8").ravel().astype(np.uint64)
        # IPv4 is stored IPv4-mapped: its address is the low 32 bits
        hi[~is_v6] = 0
        lo[~is_v6] &= _LOW32
        self._prefix_len = octets[:, 17].astype(np.int64)
        self._lookup = PrefixLookup.from_columns(
            is_v6=is_v6, hi=hi, lo=lo, prefixlen=self._prefix_len
        )
        self._lengths = {
            version: tuple(sorted(set(self._prefix_len[mask].tolist()), reverse=True))
            for version, mask in ((4, ~is_v6), (6, is_v6))
        }
        self._row = row
        #: Registrations decoded so far, by row.
        self._cache: dict[int, Registration] = {}

    def __len__(self) -> int:
        """Registrations held (entries, not distinct prefixes)."""
        return self._count

    def _registrations(self, prefix: int) -> list[Registration]:
        found = []
        for row in range(int(self._starts[prefix]), int(self._starts[prefix + 1])):
            held = self._cache.get(row)
            if held is None:
                held = self._cache[row] = self._row(row)
            found.append(held)
        return found

    def _find(self, key: bytes) -> int | None:
        """The distinct prefix whose encoding is `key`, if any."""
        i = int(np.searchsorted(self._keys, np.array(key, dtype=_KEY)))
        if i < len(self._keys) and bytes(self._keys[i]).ljust(NETWORK_SIZE, b"\0") == key:
            return i
        return None

    def covering(self, address: Address) -> Sequence[Registration]:
        found = self._lookup.lookup(address)
        if found < 0:
            return ()
        best = int(self._prefix_len[found])
        result = self._registrations(found)
        for length in self._lengths[address.version]:
            if length >= best:
                continue
            outer = ipaddress.ip_network((address, length), strict=False)
            i = self._find(encode_network(outer))
            if i is not None:
                result.extend(self._registrations(i))
        return result

    def lifts(self, key: BlockKey) -> bool:
        """Whether a registration held here makes this block key registered (either side)."""
        candidates = [*self.covering(key.local), *self.covering(key.remote)]
        return any(lifted_by(r)(key) for r in candidates)


def registration(entry: AllowlistEntry) -> Registration:
    """The policy's view of an entry: its end, ports and protocols included (ADR 0006)."""
    return Registration(
        registration_id=entry.registration_id,
        prefix=entry.prefix,
        peers=entry.peers,
        valid_until=entry.valid_until,
        ports=entry.ports,
        protocols=frozenset(str(p) for p in entry.protocols),
    )


def added_entries(old: EntryTable | None, new: EntryTable) -> EntryTable:
    """Entries in `new` that `old` does not hold (all of them when there was no old table)."""
    return new if old is None else new.difference(old)
