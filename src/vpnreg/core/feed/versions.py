"""FeedHistory: the publisher's versioned entry set, its serials and a bounded list of deltas.

Data only (no I/O, no clock): the server persists the fields and rebuilds a history from rows
with the constructor. A reset is a new history with a new session id.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vpnreg.core.feed.entry import AllowlistEntry
from vpnreg.core.feed.mode import EnforcementMode
from vpnreg.core.feed.sethash import EntryTable

DEFAULT_MAX_DELTAS = 256


@dataclass(frozen=True)
class HistoryDelta:
    """One committed change: from previous_serial to serial (always previous_serial + 1 in a
    history; merge_deltas makes wider ones)."""

    previous_serial: int
    serial: int
    added: EntryTable
    removed: EntryTable
    #: Set hash of the complete set after this change.
    set_hash: str
    mode: EnforcementMode
    created: dt.datetime


@dataclass(frozen=True)
class HistorySnapshot:
    """The complete current state, ready to be signed as a snapshot."""

    session_id: str
    serial: int
    set_hash: str
    mode: EnforcementMode
    created: dt.datetime
    entries: EntryTable


def merge_deltas(deltas: Sequence[HistoryDelta]) -> HistoryDelta:
    """One delta with the net effect of consecutive `deltas` (an entry added then removed
    vanishes); its header fields are those of the last delta."""
    if not deltas:
        raise ValueError("nothing to merge")
    for before, after in itertools.pairwise(deltas):
        if after.previous_serial != before.serial:
            raise ValueError("deltas to merge must be consecutive")
    added, removed = EntryTable.empty(), EntryTable.empty()
    for delta in deltas:
        undo_added = delta.removed.intersection(added)
        added = added.difference(undo_added)
        removed = removed.union(delta.removed.difference(undo_added))
        undo_removed = delta.added.intersection(removed)
        removed = removed.difference(undo_removed)
        added = added.union(delta.added.difference(undo_removed))
    last = deltas[-1]
    return HistoryDelta(
        deltas[0].previous_serial,
        last.serial,
        added,
        removed,
        last.set_hash,
        last.mode,
        last.created,
    )


class FeedHistory:
    """The current set, mode and serial of one feed session, and the last deltas that led there."""

    def __init__(
        self,
        *,
        session_id: str,
        serial: int,
        entries: EntryTable,
        mode: EnforcementMode,
        created: dt.datetime,
        deltas: Iterable[HistoryDelta] = (),
        max_deltas: int = DEFAULT_MAX_DELTAS,
    ) -> None:
        """Rebuild a history from its persisted parts; use FeedHistory.new for a fresh one."""
        kept = list(deltas)
        if serial < 1 or max_deltas < 0 or created.tzinfo is None:
            raise ValueError("serial must be >= 1, max_deltas >= 0 and created aware")
        expected = serial
        for delta in reversed(kept):
            if delta.serial != expected or delta.previous_serial != expected - 1:
                raise ValueError("deltas must be consecutive steps ending at the serial")
            expected -= 1
        self._session_id = session_id
        self._serial = serial
        self._entries = entries
        self._mode = mode
        self._created = created
        self._max_deltas = max_deltas
        self._deltas = kept[-max_deltas:] if max_deltas else []

    @classmethod
    def new(
        cls,
        *,
        session_id: str,
        now: dt.datetime,
        entries: EntryTable | Iterable[AllowlistEntry] = (),
        mode: EnforcementMode | None = None,
        max_deltas: int = DEFAULT_MAX_DELTAS,
    ) -> FeedHistory:
        """Serial 1 of a new session; a new registry publishes enforce with no overrides."""
        table = entries if isinstance(entries, EntryTable) else EntryTable.from_entries(entries)
        return cls(
            session_id=session_id,
            serial=1,
            entries=table,
            mode=mode if mode is not None else EnforcementMode.enforce_all(),
            created=now,
            max_deltas=max_deltas,
        )

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def serial(self) -> int:
        return self._serial

    @property
    def entries(self) -> EntryTable:
        return self._entries

    @property
    def mode(self) -> EnforcementMode:
        return self._mode

    @property
    def created(self) -> dt.datetime:
        return self._created

    @property
    def deltas(self) -> tuple[HistoryDelta, ...]:
        return tuple(self._deltas)

    @property
    def max_deltas(self) -> int:
        return self._max_deltas

    def commit(
        self,
        entries: EntryTable | Iterable[AllowlistEntry],
        mode: EnforcementMode,
        now: dt.datetime,
    ) -> int:
        """Record a new state; a new serial only if the set or the mode changed.

        The creation time never goes backwards (a clock step back keeps the previous time), so
        clients never see a newer serial with an older time and refuse it as a rollback.
        """
        table = entries if isinstance(entries, EntryTable) else EntryTable.from_entries(entries)
        if table == self._entries and mode == self._mode:
            return self._serial
        added, removed = self._entries.diff(table)
        created = max(now, self._created)
        delta = HistoryDelta(
            self._serial, self._serial + 1, added, removed, table.set_hash(), mode, created
        )
        self._deltas.append(delta)
        if len(self._deltas) > self._max_deltas:
            del self._deltas[: len(self._deltas) - self._max_deltas]
        self._serial, self._entries, self._mode, self._created = (
            delta.serial,
            table,
            mode,
            created,
        )
        return self._serial

    def delta_since(self, serial: int) -> list[HistoryDelta] | None:
        """The deltas from `serial` to the current one ([] if current), or None when `serial`
        is unknown or older than the kept deltas: the client needs a snapshot."""
        if serial == self._serial:
            return []
        if serial > self._serial or serial < 1:
            return None
        for i, delta in enumerate(self._deltas):
            if delta.previous_serial == serial:
                return self._deltas[i:]
        return None

    def snapshot(self) -> HistorySnapshot:
        return HistorySnapshot(
            self._session_id,
            self._serial,
            self._entries.set_hash(),
            self._mode,
            self._created,
            self._entries,
        )
