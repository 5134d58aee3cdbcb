"""The allowlist index: a RegistrationIndex over a feed's entries, built once per feed state and
never changed afterwards (a feed update builds a new one and swaps the reference). The gateway
agent decides flows with it; the registry's public lookup answers from it (ADR 0014).

Longest-prefix match comes from `PrefixLookup` over the distinct registered prefixes. A valid
registry never publishes nested prefixes, but the index stays correct if one does: after the most
specific match, the shorter registered prefixes containing the address are found by probing the
(few) distinct prefix lengths below it, so `covering` returns every registration covering an
address, most specific first, then by registration id.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from vpnreg.core.feed import AllowlistEntry, EntryTable
from vpnreg.core.ipspace import PrefixLookup
from vpnreg.core.policy import Address, BlockKey, Network, Registration, lifted_by


class AllowlistIndex:
    """Immutable index of registrations by prefix; implements core.policy.RegistrationIndex."""

    __slots__ = ("_by_prefix", "_count", "_lengths", "_lookup", "_prefixes", "_registrations")

    def __init__(self, registrations: Iterable[Registration]) -> None:
        grouped: dict[Network, list[Registration]] = {}
        for registration in registrations:
            grouped.setdefault(registration.prefix, []).append(registration)
        self._prefixes: list[Network] = list(grouped)
        self._registrations: list[tuple[Registration, ...]] = [
            tuple(sorted(grouped[p], key=lambda r: r.registration_id)) for p in self._prefixes
        ]
        self._by_prefix: dict[Network, int] = {p: i for i, p in enumerate(self._prefixes)}
        self._lengths: dict[int, tuple[int, ...]] = {
            version: tuple(
                sorted({p.prefixlen for p in self._prefixes if p.version == version}, reverse=True)
            )
            for version in (4, 6)
        }
        self._count = sum(len(r) for r in self._registrations)
        self._lookup = PrefixLookup(self._prefixes)

    @classmethod
    def from_entries(cls, entries: EntryTable | Iterable[AllowlistEntry]) -> AllowlistIndex:
        return cls(registration(entry) for entry in entries)

    @classmethod
    def empty(cls) -> AllowlistIndex:
        return cls(())

    def __len__(self) -> int:
        """Registrations held (entries, not distinct prefixes)."""
        return self._count

    def covering(self, address: Address) -> Sequence[Registration]:
        found = self._lookup.lookup(address)
        if found < 0:
            return ()
        best = self._prefixes[found]
        result = list(self._registrations[found])
        for length in self._lengths[address.version]:
            if length >= best.prefixlen:
                continue
            outer = ipaddress.ip_network((address, length), strict=False)
            i = self._by_prefix.get(outer)
            if i is not None:
                result.extend(self._registrations[i])
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
