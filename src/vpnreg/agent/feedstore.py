"""The feed client's state directory: its last good copy of the set and its rollback floor.

Files, each replaced atomically (temporary file, fsync, rename, fsync of the directory):

- ``snapshot.json``: the complete set held, self-proving. Either the signed snapshot document
  (as received, or rebuilt from a compact snapshot: the same signed fields, ADR 0011), or, after
  deltas, ``{"type": "rebuilt", "proof": <the last verified delta document as received>,
  "entries": [...]}``: the delta's signature covers the set hash of the complete set, and the
  entries must hash to it, so a rebuilt set proves itself as fully as a snapshot does.
- ``snapshot.compact``: the same set in the compact form of ADR 0011 (for a rebuilt set, its
  head is ``{"type": "rebuilt", "proof": ...}``): a copy that loads in a fraction of the time
  at start. It is removed before snapshot.json is replaced and written after it, so when it is
  there it is never older than snapshot.json; load takes it (without reading snapshot.json)
  only when it re-verifies and is exactly the state recorded in state.json, and reads
  snapshot.json otherwise.
- ``state.json``: ``{"format": 1, "held": {session_id, serial, created, set_hash},
  "verified_at": ...}``: the newest state accepted (the rollback floor across restarts) and
  when the feed was last reached.

snapshot.json (and its compact copy) is written first and state.json last, so a crash between
them leaves a copy newer than the floor, which load accepts; a copy older than the floor, or the
same serial with another set hash, is refused (StoredStateError). A state.json that cannot be
read or is not a state file at all (a torn write, a bad disk block) is not a reason to refuse
every feed forever: load recovers the floor from snapshot.json if that re-verifies, or else
starts over with nothing held, and says so (StoredFeed.notice). Details: docs/feed-client.md.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vpnreg.core.feed import (
    EntryTable,
    FeedError,
    FeedState,
    HashMismatch,
    HeldState,
    MalformedDocument,
    VerifiedDelta,
    VerifiedSnapshot,
    check_not_older,
    dump_document,
    is_compact,
    load_json,
    verify_document,
)
from vpnreg.core.feed.compact import (
    compact_of,
    encode_compact,
    read_compact,
    read_compact_body,
    verify_compact,
)
from vpnreg.files import stage, write_atomic

SNAPSHOT_FILE = "snapshot.json"
COMPACT_FILE = "snapshot.compact"
STATE_FILE = "state.json"
STATE_FORMAT = 1
#: Re-verifying a held copy checks signature and hashes but not expiry (an expired copy is
#: kept and marked stale): verify_document only compares `now` with the expiry time.
_BEFORE_ANY_EXPIRY = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Only the agent reads its state directory, so its files stay private (as mkstemp made them).
_FILE_MODE = 0o600


class StoredStateError(FeedError):
    """The state directory does not re-verify: edited, corrupted, or older than its floor."""


class _UnusableStateFile(Exception):
    """state.json cannot be read or is not a state file (as opposed to a valid one that
    disagrees with the copy, which is refused)."""


@dataclass(frozen=True)
class StoredFeed:
    """What load found: the re-verified state (None after a fresh start) and when the feed was
    last reached; `notice` is one line saying what was repaired, if anything."""

    state: FeedState | None
    verified_at: dt.datetime | None
    notice: str | None = None


def _time_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


class FeedStore:
    """Reads and writes one state directory (created on first write)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def snapshot_path(self) -> Path:
        return self._dir / SNAPSHOT_FILE

    @property
    def compact_path(self) -> Path:
        return self._dir / COMPACT_FILE

    @property
    def state_path(self) -> Path:
        return self._dir / STATE_FILE

    # -- writing -----------------------------------------------------------------------------

    def save_snapshot(
        self, snapshot: VerifiedSnapshot, *, raw: bytes, verified_at: dt.datetime
    ) -> None:
        """Hold a verified snapshot: `raw` as received (a JSON document or a compact snapshot),
        kept as snapshot.json in JSON form and as the compact copy."""
        compact = is_compact(raw)
        self._replace_copies(
            raw=snapshot.document() if compact else raw,
            compact=raw if compact else compact_of(snapshot),
        )
        self.save_verified_at(snapshot.state(), verified_at=verified_at)

    def save_rebuilt(self, proof: bytes, state: FeedState, *, verified_at: dt.datetime) -> None:
        """Hold a set rebuilt from deltas, with `proof` the last delta document as received."""
        head = [b'{"type":"rebuilt","proof":', proof, b"}"]
        self._replace_copies(
            raw=[
                head[0],
                proof,
                b',"entries":',
                state.entries.to_json_text().encode("ascii"),
                b"}",
            ],
            compact=encode_compact(b"".join(head), state.entries),
        )
        self.save_verified_at(state, verified_at=verified_at)

    def _replace_copies(self, *, raw: bytes | list[bytes], compact: bytes) -> None:
        """snapshot.json and its compact copy, both written out before either is renamed into
        place (a full disk leaves both as they were); the old compact copy goes before
        snapshot.json is replaced, so a crash never leaves one older than snapshot.json."""
        self._dir.mkdir(parents=True, exist_ok=True)
        staged_json = stage(self.snapshot_path, raw, mode=_FILE_MODE)
        try:
            staged_compact = stage(self.compact_path, compact, mode=_FILE_MODE)
        except BaseException:
            staged_json.discard()
            raise
        try:
            self.compact_path.unlink(missing_ok=True)
            staged_json.put()
        except BaseException:
            staged_compact.discard()
            raise
        staged_compact.put()

    def save_verified_at(self, state: FeedState, *, verified_at: dt.datetime) -> None:
        """Record the floor (the state held) and when the feed was last reached."""
        self._dir.mkdir(parents=True, exist_ok=True)
        body = {
            "format": STATE_FORMAT,
            "held": state.held().to_json(),
            "verified_at": _time_text(verified_at),
        }
        write_atomic(
            self.state_path,
            [json.dumps(body, indent=1).encode("ascii"), b"\n"],
            mode=_FILE_MODE,
        )

    # -- reading -----------------------------------------------------------------------------

    def load(self, *, trusted: Mapping[str, Ed25519PublicKey]) -> StoredFeed | None:
        """Re-verify the held copy from scratch; None if the directory holds nothing yet.

        Raises StoredStateError when the copy does not verify or is older than the floor in
        state.json. An unreadable or garbled state.json is repaired instead (see _recover).
        """
        try:
            floor, verified_at = self._read_state()
        except _UnusableStateFile as exc:
            return self._recover(trusted, problem=str(exc))
        if floor is not None:
            quick = self._load_compact(floor, trusted)
            if quick is not None:
                return StoredFeed(quick, verified_at)
        try:
            raw = self.snapshot_path.read_bytes()
        except FileNotFoundError:
            if floor is None:
                return None
            raise StoredStateError(
                f"{self.state_path} names a held state but {self.snapshot_path} is missing"
            ) from None
        except OSError as exc:
            raise StoredStateError(f"cannot read {self.snapshot_path}: {exc.strerror}") from None
        try:
            state = self._verify_copy(raw, trusted)
        except StoredStateError:
            raise
        except FeedError as exc:
            raise StoredStateError(
                f"{self.snapshot_path} does not re-verify ({type(exc).__name__}: {exc})"
            ) from None
        try:
            check_not_older(floor, state)
        except FeedError as exc:
            raise StoredStateError(
                f"{self.snapshot_path} is older than the state recorded in {self.state_path}: {exc}"
            ) from None
        return StoredFeed(state, verified_at)

    def _load_compact(
        self, floor: HeldState, trusted: Mapping[str, Ed25519PublicKey]
    ) -> FeedState | None:
        """The compact copy's state when it re-verifies and is exactly the floor, and
        snapshot.json is there too; None otherwise (snapshot.json then decides)."""
        try:
            if not self.snapshot_path.is_file():
                return None
            raw = self.compact_path.read_bytes()
            state = self._verify_compact_copy(raw, trusted)
        except (OSError, FeedError):
            return None
        same = (state.session_id, state.serial, state.set_hash, state.created)
        return (
            state
            if same == (floor.session_id, floor.serial, floor.set_hash, floor.created)
            else None
        )

    def _verify_compact_copy(
        self, raw: bytes, trusted: Mapping[str, Ed25519PublicKey]
    ) -> FeedState:
        head, at = read_compact(raw, str(self.compact_path))
        if not (isinstance(head, dict) and head.get("type") == "rebuilt"):
            return verify_compact(raw, trusted=trusted, now=_BEFORE_ANY_EXPIRY).state()
        if set(head) != {"type", "proof"}:
            raise MalformedDocument("the rebuilt compact copy's head must have type and proof")
        proof = self._verify_proof(head["proof"], trusted)
        entries = read_compact_body(raw, at, proof.version, proof.set_hash, str(self.compact_path))
        return _rebuilt_state(proof, entries)

    def _recover(self, trusted: Mapping[str, Ed25519PublicKey], *, problem: str) -> StoredFeed:
        """state.json is unusable: take the floor from snapshot.json if it re-verifies with the
        trusted keys (anything older than that copy is then refused as before), and rewrite
        state.json from it; otherwise start over with nothing held. The last contact is unknown:
        the copy's creation time stands in for it (the client is stale until it reaches the feed).

        Without a floor, a copy older than the lost one cannot be told apart: someone able to
        write the directory could roll the gateway back, as they could by rewriting both files.
        """
        try:
            state = self._verify_copy(self.snapshot_path.read_bytes(), trusted)
        except FileNotFoundError:
            reason = "there is no copy"
        except OSError as exc:
            reason = f"cannot read {self.snapshot_path}: {exc.strerror}"
        except FeedError as exc:
            reason = f"{self.snapshot_path} does not re-verify ({type(exc).__name__}: {exc})"
        else:
            notice = (
                f"{problem}; recovered serial {state.serial} of session {state.session_id} "
                f"from {self.snapshot_path}"
            )
            try:
                self.save_verified_at(state, verified_at=state.created)
            except OSError as exc:
                notice += f" (cannot rewrite {self.state_path}: {exc.strerror or exc})"
            return StoredFeed(state, state.created, notice)
        return StoredFeed(None, None, f"{problem} and {reason}; starting over with nothing held")

    def _read_state(self) -> tuple[HeldState | None, dt.datetime | None]:
        try:
            text = self.state_path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise _UnusableStateFile(f"cannot read {self.state_path}: {exc.strerror}") from None
        try:
            body: Any = load_json(text, str(self.state_path))
            if not isinstance(body, dict) or body.get("format") != STATE_FORMAT:
                raise MalformedDocument(f"format must be {STATE_FORMAT}")
            if set(body) != {"format", "held", "verified_at"}:
                raise MalformedDocument("fields must be format, held, verified_at")
            floor = HeldState.from_json(body["held"])
            verified_at = dt.datetime.fromisoformat(str(body["verified_at"]))
            if verified_at.tzinfo is None:
                raise MalformedDocument("verified_at must carry a time zone")
        except (ValueError, MalformedDocument) as exc:
            raise _UnusableStateFile(
                f"{self.state_path} is not a valid state file: {exc}"
            ) from None
        return floor, verified_at

    def _verify_copy(self, raw: bytes, trusted: Mapping[str, Ed25519PublicKey]) -> FeedState:
        if not raw.startswith(b'{"type":"rebuilt"'):
            doc = verify_document(raw, trusted=trusted, now=_BEFORE_ANY_EXPIRY)
            if not isinstance(doc, VerifiedSnapshot):
                raise StoredStateError(f"{self.snapshot_path} holds a lone delta, not a set")
            return doc.state()
        body: Any = load_json(raw, "the rebuilt copy")
        if not isinstance(body, dict) or set(body) != {"type", "proof", "entries"}:
            raise MalformedDocument("the rebuilt copy must have type, proof and entries")
        proof = self._verify_proof(body["proof"], trusted)
        if not isinstance(body["entries"], list):
            raise MalformedDocument("the rebuilt entries must be a list")
        # the entries are of the proof's version (a v1 set rebuilt from v1 deltas stays v1)
        entries = EntryTable.from_json_list(body["entries"], version=proof.version)
        if len(entries) != len(body["entries"]):
            raise MalformedDocument("the rebuilt entries list an entry twice")
        return _rebuilt_state(proof, entries)

    def _verify_proof(self, proof: Any, trusted: Mapping[str, Ed25519PublicKey]) -> VerifiedDelta:
        try:
            proof_raw = dump_document(proof)
        except (ValueError, RecursionError):
            raise MalformedDocument("the proof of a rebuilt copy is not a document") from None
        verified = verify_document(proof_raw, trusted=trusted, now=_BEFORE_ANY_EXPIRY)
        if not isinstance(verified, VerifiedDelta):
            raise MalformedDocument("the proof of a rebuilt copy must be a delta")
        return verified


def _rebuilt_state(proof: VerifiedDelta, entries: EntryTable) -> FeedState:
    """The state a verified delta proves, held as `entries` (which must hash to its set)."""
    if entries.set_hash() != proof.set_hash:
        raise HashMismatch("the rebuilt entries do not hash to the set hash of their proof")
    return FeedState(
        session_id=proof.session_id,
        serial=proof.serial,
        set_hash=proof.set_hash,
        mode=proof.mode,
        created=proof.created,
        expires=proof.expires,
        entries=entries,
    )
