"""The live bindings near one report's addresses, in memory, for its overlap checks.

Loaded with one query per stretch of address space the report touches and kept up to date by
the report itself, so checking 10,000 events costs a few queries, not 10,000. Bindings of one
address (the usual case: a /32 shared by carrier-grade NAT in port blocks) sit in a bucket of
that address sorted by their first port, so a check reads the few blocks near its own ports,
not every block of the address; bindings of wider prefixes (rare) sit in one list sorted by
their first address.
"""

from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.orm import Session

from vpnreg.core.feed.entry import ANY_PORTS
from vpnreg.core.ipspace import Network
from vpnreg.registry.models import Binding

__all__ = ["HeldBinding", "LiveIndex"]


@dataclass
class HeldBinding:
    """A binding as the overlap check sees it (a stored live one, or one a report made)."""

    range_start: str
    range_end: str
    isp_id: int
    subscriber_id: str
    session_id: str
    network: Network
    ports: tuple[int, int] | None
    valid_until: dt.datetime

    @property
    def port_span(self) -> tuple[int, int]:
        return self.ports or ANY_PORTS


@dataclass
class _AddressBucket:
    """The bindings of one address, sorted by their first port."""

    firsts: list[int] = field(default_factory=list)
    held: list[HeldBinding] = field(default_factory=list)
    #: The widest port range in the bucket: how far left of a port a block may start.
    widest: int = 0

    def add(self, held: HeldBinding) -> None:
        lo, hi = held.port_span
        at = bisect.bisect_right(self.firsts, lo)
        self.firsts.insert(at, lo)
        self.held.insert(at, held)
        self.widest = max(self.widest, hi - lo)

    def overlapping(self, lo: int, hi: int) -> Iterator[HeldBinding]:
        """The bindings whose port range meets [lo, hi]."""
        at = bisect.bisect_right(self.firsts, hi) - 1
        while at >= 0 and self.firsts[at] >= lo - self.widest:
            held = self.held[at]
            if held.port_span[1] >= lo:
                yield held
            at -= 1


class LiveIndex:
    """Live bindings by address (buckets) and, for wider prefixes, by first address."""

    def __init__(self) -> None:
        self._buckets: dict[str, _AddressBucket] = {}
        self._addresses: list[str] = []  # the buckets' keys, sorted
        self._wide_starts: list[str] = []
        self._wide: list[HeldBinding] = []

    def add(self, held: HeldBinding) -> None:
        if held.range_start == held.range_end:
            bucket = self._buckets.get(held.range_start)
            if bucket is None:
                bucket = self._buckets[held.range_start] = _AddressBucket()
                bisect.insort(self._addresses, held.range_start)
            bucket.add(held)
            return
        at = bisect.bisect_right(self._wide_starts, held.range_start)
        self._wide_starts.insert(at, held.range_start)
        self._wide.insert(at, held)

    def near(
        self, *, lowest_start: str, start: str, end: str, ports: tuple[int, int] | None
    ) -> Iterator[HeldBinding]:
        """Bindings whose addresses meet [start, end] and whose ports meet `ports`; wider
        bindings are looked for from `lowest_start` (none starts further left)."""
        lo, hi = ports or ANY_PORTS
        if start == end:
            bucket = self._buckets.get(start)
            if bucket is not None:
                yield from bucket.overlapping(lo, hi)
        else:
            first = bisect.bisect_left(self._addresses, start)
            last = bisect.bisect_right(self._addresses, end)
            for key in self._addresses[first:last]:
                yield from self._buckets[key].overlapping(lo, hi)
        first = bisect.bisect_left(self._wide_starts, lowest_start)
        last = bisect.bisect_right(self._wide_starts, end)
        for held in self._wide[first:last]:
            if held.range_end >= start:
                yield held

    @classmethod
    def load(
        cls, session: Session, spans: list[tuple[str, str, str]], now: dt.datetime
    ) -> LiveIndex:
        """The live bindings that may meet the `spans` (lowest start, start, end): every one
        starting inside [start, end], and the wider ones starting from `lowest start` on.

        Only wider bindings (rare) are read from the lowest start on: reading every binding
        from there would read each address of a densely bound /22 for every event. Single
        addresses (the usual span) are looked up by key, many per query."""
        index = cls()
        seen: set[tuple[int, str, str]] = set()

        def add(rows: Iterable[Any]) -> None:
            for start, end, isp, sub, sess, address, lo, hi, until in rows:
                if (isp, sub, sess) in seen:
                    continue  # a wider binding found by two spans
                seen.add((isp, sub, sess))
                ports = None if lo is None or hi is None else (lo, hi)
                network = ipaddress.ip_network(address)
                index.add(HeldBinding(start, end, isp, sub, sess, network, ports, until))

        live = (Binding.ended_at.is_(None), Binding.valid_until > now)
        singles = sorted({start for _, start, end in spans if start == end})
        literal = session.get_bind().dialect.name == "postgresql"  # as _load_existing says
        for i in range(0, len(singles), _LOOKUP_BATCH):
            keys: BindParameter[list[str]] = bindparam(
                "keys", singles[i : i + _LOOKUP_BATCH], expanding=True, literal_execute=literal
            )
            add(session.execute(_COLUMNS.where(Binding.range_start.in_(keys), *live)))
        ranges = [(start, end, False) for _, start, end in spans if start != end]
        wide = [(lowest, end, True) for lowest, _, end in spans]
        for low, high, wide_only in _merged(ranges) + _merged(wide):
            query = _COLUMNS.where(Binding.range_start >= low, Binding.range_start <= high, *live)
            if wide_only:
                query = query.where(Binding.range_end != Binding.range_start)
            add(session.execute(query))
        return index


#: Keys looked up per query.
_LOOKUP_BATCH = 500
_COLUMNS = select(
    Binding.range_start,
    Binding.range_end,
    Binding.isp_id,
    Binding.subscriber_id,
    Binding.session_id,
    Binding.address,
    Binding.port_lo,
    Binding.port_hi,
    Binding.valid_until,
)


def _merged(spans: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """Overlapping spans (all of one kind) merged into one."""
    merged: list[tuple[str, str, bool]] = []
    for low, high, kind in sorted(spans):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high), kind)
        else:
            merged.append((low, high, kind))
    return merged
