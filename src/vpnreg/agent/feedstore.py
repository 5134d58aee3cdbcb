"""The feed client's state directory: its last good copy of the set and its rollback floor.

Two files, each replaced atomically (temporary file, fsync, rename, fsync of the directory):

- ``snapshot.json``: the complete set held, self-proving. Either the signed snapshot document
  exactly as received, or, after deltas, ``{"type": "rebuilt", "proof": <the last verified delta
  document as received>, "entries": [...]}``: the delta's signature covers the set hash of the
  complete set, and the entries must hash to it, so a rebuilt set proves itself as fully as a
  snapshot does.
- ``state.json``: ``{"format": 1, "held": {session_id, serial, created, set_hash},
  "verified_at": ...}``: the newest state accepted (the rollback floor across restarts) and
  when the feed was last reached.

snapshot.json is written first and state.json second, so a crash between the two leaves a
copy newer than the floor, which load accepts; a copy older than the floor, or the same serial
with another set hash, is refused (StoredStateError). A state.json that cannot be read or is not
a state file at all (a torn write, a bad disk block) is not a reason to refuse every feed
forever: load recovers the floor from snapshot.json if that re-verifies, or else starts over
with nothing held, and says so (StoredFeed.notice). Details: docs/feed-client.md.
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
    load_json,
    verify_document,
)
from vpnreg.files import write_atomic

SNAPSHOT_FILE = "snapshot.json"
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
    def state_path(self) -> Path:
        return self._dir / STATE_FILE

    # -- writing -----------------------------------------------------------------------------

    def save_snapshot(self, raw: bytes, state: FeedState, *, verified_at: dt.datetime) -> None:
        """Hold a verified snapshot document, `raw` exactly as received."""
        self._dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.snapshot_path, raw, mode=_FILE_MODE)
        self.save_verified_at(state, verified_at=verified_at)

    def save_rebuilt(self, proof: bytes, state: FeedState, *, verified_at: dt.datetime) -> None:
        """Hold a set rebuilt from deltas, with `proof` the last delta document as received."""
        self._dir.mkdir(parents=True, exist_ok=True)
        write_atomic(
            self.snapshot_path,
            [
                b'{"type":"rebuilt","proof":',
                proof,
                b',"entries":',
                state.entries.to_json_text().encode("ascii"),
                b"}",
            ],
            mode=_FILE_MODE,
        )
        self.save_verified_at(state, verified_at=verified_at)

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
        try:
            proof_raw = dump_document(body["proof"])
        except (ValueError, RecursionError):
            raise MalformedDocument("the proof of a rebuilt copy is not a document") from None
        proof = verify_document(proof_raw, trusted=trusted, now=_BEFORE_ANY_EXPIRY)
        if not isinstance(proof, VerifiedDelta):
            raise MalformedDocument("the proof of a rebuilt copy must be a delta")
        if not isinstance(body["entries"], list):
            raise MalformedDocument("the rebuilt entries must be a list")
        # the entries are of the proof's version (a v1 set rebuilt from v1 deltas stays v1)
        entries = EntryTable.from_json_list(body["entries"], version=proof.version)
        if len(entries) != len(body["entries"]):
            raise MalformedDocument("the rebuilt entries list an entry twice")
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
