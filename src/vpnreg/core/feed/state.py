"""A client's held feed state: rollback checks and applying a verified delta."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from vpnreg.core.feed.errors import (
    HashMismatch,
    MalformedDocument,
    NotApplicable,
    Rollback,
    SessionMismatch,
    VersionMismatch,
)
from vpnreg.core.feed.mode import EnforcementMode
from vpnreg.core.feed.sethash import EntryTable

if TYPE_CHECKING:
    from vpnreg.core.feed.document import VerifiedDelta


@dataclass(frozen=True)
class HeldState:
    """What a client persists about the feed state it enforces."""

    session_id: str
    serial: int
    created: dt.datetime
    set_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "serial": self.serial,
            "created": self.created.isoformat(),
            "set_hash": self.set_hash,
        }

    @classmethod
    def from_json(cls, obj: object) -> HeldState:
        if not isinstance(obj, dict) or set(obj) != {"session_id", "serial", "created", "set_hash"}:
            raise MalformedDocument("held state must have session_id, serial, created, set_hash")
        try:
            created = dt.datetime.fromisoformat(obj["created"])
        except (TypeError, ValueError):
            raise MalformedDocument("held state: bad created time") from None
        if created.tzinfo is None or type(obj["serial"]) is not int:
            raise MalformedDocument("held state: created must be aware, serial an integer")
        return cls(str(obj["session_id"]), obj["serial"], created, str(obj["set_hash"]))


class Freshness(StrEnum):
    NEWER = "newer"
    #: Same session, serial and set hash as held: nothing to do.
    SAME = "same"


class _Stamped(Protocol):
    @property
    def session_id(self) -> str: ...
    @property
    def serial(self) -> int: ...
    @property
    def created(self) -> dt.datetime: ...
    @property
    def set_hash(self) -> str: ...


def check_not_older(held: HeldState | None, doc: _Stamped) -> Freshness:
    """Raise Rollback if `doc` is older than `held`; say SAME if it is what is held.

    Older means: created before the held state (in any session), or a lower serial in the same
    session, or the held serial in the same session with another set hash (equivocation).
    """
    if held is None:
        return Freshness.NEWER
    if doc.created < held.created:
        raise Rollback(f"document created {doc.created} before held state {held.created}")
    if doc.session_id != held.session_id:
        return Freshness.NEWER
    if doc.serial < held.serial:
        raise Rollback(f"serial {doc.serial} is below held serial {held.serial}")
    if doc.serial == held.serial:
        if doc.set_hash != held.set_hash:
            raise Rollback(f"serial {doc.serial} already held with another set hash")
        return Freshness.SAME
    return Freshness.NEWER


@dataclass(frozen=True)
class FeedState:
    """A verified complete state: from a snapshot, or a held state with deltas applied."""

    session_id: str
    serial: int
    set_hash: str
    mode: EnforcementMode
    created: dt.datetime
    expires: dt.datetime
    entries: EntryTable

    @property
    def version(self) -> int:
        """The entry version held: 2, or 1 from a v1 document (enforced as ADR 0006 says)."""
        return self.entries.version

    def held(self) -> HeldState:
        return HeldState(self.session_id, self.serial, self.created, self.set_hash)


class _HeldSet(Protocol):
    @property
    def session_id(self) -> str: ...
    @property
    def serial(self) -> int: ...
    @property
    def entries(self) -> EntryTable: ...


def apply_delta(held: _HeldSet, delta: VerifiedDelta) -> FeedState:
    """The state after `delta`, re-checking the resulting set hash against the signed one."""
    if delta.session_id != held.session_id:
        raise SessionMismatch(
            f"delta is for session {delta.session_id}, held state is {held.session_id}"
        )
    if delta.version != held.entries.version:
        raise VersionMismatch(
            f"delta is of version {delta.version}, the held set of version "
            f"{held.entries.version}; a snapshot is needed"
        )
    if delta.previous_serial != held.serial:
        raise NotApplicable(
            f"delta starts at serial {delta.previous_serial}, held serial is {held.serial}"
        )
    entries = held.entries.apply(added=delta.added, removed=delta.removed)
    if entries.set_hash() != delta.set_hash:
        raise HashMismatch("the set after applying the delta does not match its set hash")
    return FeedState(
        session_id=delta.session_id,
        serial=delta.serial,
        set_hash=delta.set_hash,
        mode=delta.mode,
        created=delta.created,
        expires=delta.expires,
        entries=entries,
    )
