"""Signed snapshot and delta documents: building them and verifying them from raw bytes."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vpnreg.core.feed.entry import AllowlistEntry
from vpnreg.core.feed.errors import (
    Expired,
    HashMismatch,
    MalformedDocument,
    TruncatedDocument,
    UnsignedDocument,
    UnsupportedVersion,
)
from vpnreg.core.feed.mode import EnforcementMode
from vpnreg.core.feed.sethash import SUPPORTED_VERSIONS, EntryTable
from vpnreg.core.feed.signing import (
    DocumentType,
    Header,
    changes_digest,
    sign_header,
    verify_header,
)
from vpnreg.core.feed.state import FeedState, HeldState, check_not_older
from vpnreg.core.feed.versions import HistoryDelta, HistorySnapshot

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")
_MAX_SERIAL = 2**64 - 1
#: What is left when input stops inside a literal or after a minus sign.
_CUT_VALUE = re.compile(r"-|t|tr|tru|f|fa|fal|fals|n|nu|nul")
_SIGNATURE_KEYS = frozenset({"key_id", "signature"})
_HEADER_KEYS = frozenset(
    {"type", "session_id", "serial", "previous_serial", "set_hash", "mode", "created", "expires"}
)
_V1_KEYS = {
    DocumentType.SNAPSHOT: _HEADER_KEYS | _SIGNATURE_KEYS | {"entries"},
    DocumentType.DELTA: _HEADER_KEYS | _SIGNATURE_KEYS | {"added", "removed"},
}
#: Fields per document version and type: v2 adds "version" (v1 documents have no such field).
_KEYS = {
    1: _V1_KEYS,
    2: {kind: keys | {"version"} for kind, keys in _V1_KEYS.items()},
}
_SUPPORTED_TEXT = " and ".join(str(v) for v in SUPPORTED_VERSIONS)


@dataclass(frozen=True)
class VerifiedSnapshot:
    """A snapshot whose signature, expiry and set hash have all been checked."""

    key_id: str
    session_id: str
    serial: int
    set_hash: str
    mode: EnforcementMode
    created: dt.datetime
    expires: dt.datetime
    entries: EntryTable
    #: A snapshot follows nothing: its previous serial is always 0.
    previous_serial: int = 0
    #: The base64 signature over the header: with key_id, what a copy in another form (JSON
    #: or compact, ADR 0011) needs to prove itself again.
    signature: str = ""

    @property
    def version(self) -> int:
        return self.entries.version

    def head(self) -> dict[str, Any]:
        """The signed JSON fields of this snapshot: every field of its document but entries."""
        header = Header(
            DocumentType.SNAPSHOT,
            self.session_id,
            self.serial,
            0,
            self.set_hash,
            self.mode,
            self.created,
            self.expires,
            version=self.version,
        )
        return {**_header_json(header), "key_id": self.key_id, "signature": self.signature}

    def document(self) -> bytes:
        """This snapshot as ADR 0001's JSON document (it verifies: same signed fields)."""
        return with_entries(self.head(), self.entries)

    def state(self) -> FeedState:
        return FeedState(
            self.session_id,
            self.serial,
            self.set_hash,
            self.mode,
            self.created,
            self.expires,
            self.entries,
        )

    def held(self) -> HeldState:
        return HeldState(self.session_id, self.serial, self.created, self.set_hash)


@dataclass(frozen=True)
class VerifiedDelta:
    """A delta whose signature and expiry have been checked; apply_delta checks its result."""

    key_id: str
    session_id: str
    serial: int
    previous_serial: int
    set_hash: str
    mode: EnforcementMode
    created: dt.datetime
    expires: dt.datetime
    added: EntryTable
    removed: EntryTable

    @property
    def version(self) -> int:
        return self.added.version


# -- building ----------------------------------------------------------------------------------


def format_time(moment: dt.datetime) -> str:
    """Canonical JSON time: UTC with a Z, microseconds only when not zero."""
    if moment.tzinfo is None:
        raise ValueError("datetimes in the feed must be timezone-aware")
    utc = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat() + "Z"


def _table(entries: EntryTable | Iterable[AllowlistEntry]) -> EntryTable:
    return entries if isinstance(entries, EntryTable) else EntryTable.from_entries(entries)


def _header_json(header: Header) -> dict[str, Any]:
    version = {"version": header.version} if header.version != 1 else {}
    return {
        "type": str(header.type),
        **version,
        "session_id": header.session_id,
        "serial": header.serial,
        "previous_serial": header.previous_serial,
        "set_hash": header.set_hash,
        "mode": header.mode.to_json(),
        "created": format_time(header.created),
        "expires": format_time(header.expires),
    }


def _check_header(header: Header) -> None:
    """Refuse to sign what verify_document would refuse to read."""
    _session_id(header.session_id)
    _set_hash(header.set_hash)
    if header.created.tzinfo is None or header.expires.tzinfo is None:
        raise ValueError("created and expires must be timezone-aware")
    if not header.created < header.expires:
        raise ValueError("expires must be after created")
    if not 0 < header.serial <= _MAX_SERIAL:
        raise ValueError("serial must be in 1..2**64-1")


def signed_snapshot_head(
    *,
    session_id: str,
    serial: int,
    table: EntryTable,
    mode: EnforcementMode,
    created: dt.datetime,
    expires: dt.datetime,
    private_key: Ed25519PrivateKey,
) -> dict[str, Any]:
    """The one place a snapshot header is built, checked and signed: its JSON fields with
    `key_id` and `signature` (the entries are covered by the set hash in the header)."""
    header = Header(
        DocumentType.SNAPSHOT,
        session_id,
        serial,
        0,
        table.set_hash(),
        mode,
        created,
        expires,
        version=table.version,
    )
    _check_header(header)
    key, signature = sign_header(header, private_key)
    return {**_header_json(header), "key_id": key, "signature": signature}


def sign_snapshot(
    *,
    session_id: str,
    serial: int,
    entries: EntryTable | Iterable[AllowlistEntry],
    mode: EnforcementMode,
    created: dt.datetime,
    expires: dt.datetime,
    private_key: Ed25519PrivateKey,
) -> dict[str, Any]:
    """The JSON document of a signed snapshot of the complete entry set, as a dict (for tools
    and tests; servers send sign_snapshot_bytes, which signs the same header)."""
    table = _table(entries)
    head = signed_snapshot_head(
        session_id=session_id,
        serial=serial,
        table=table,
        mode=mode,
        created=created,
        expires=expires,
        private_key=private_key,
    )
    # Entries before the signature fields: the order the committed vectors were written in.
    fields = {k: v for k, v in head.items() if k not in _SIGNATURE_KEYS}
    return {
        **fields,
        "entries": table.to_json_list(),
        "key_id": head["key_id"],
        "signature": head["signature"],
    }


def sign_snapshot_bytes(
    *,
    session_id: str,
    serial: int,
    entries: EntryTable | Iterable[AllowlistEntry],
    mode: EnforcementMode,
    created: dt.datetime,
    expires: dt.datetime,
    private_key: Ed25519PrivateKey,
) -> bytes:
    """dump_document(sign_snapshot(...)) up to field order, without building a dict per entry:
    the wire bytes of a large snapshot, the entry list written by EntryTable.to_json_text."""
    table = _table(entries)
    head = signed_snapshot_head(
        session_id=session_id,
        serial=serial,
        table=table,
        mode=mode,
        created=created,
        expires=expires,
        private_key=private_key,
    )
    return with_entries(head, table)


def with_entries(head: Mapping[str, Any], table: EntryTable) -> bytes:
    """The wire bytes of a snapshot document: its signed `head` (every field but `entries`)
    followed by the entries of `table`, written by EntryTable.to_json_text."""
    text = dump_document(head)
    return text[:-1] + b',"entries":' + table.to_json_text().encode("ascii") + b"}"


def expires_after(created: dt.datetime, *, now: dt.datetime, validity: dt.timedelta) -> dt.datetime:
    """When a document signed at `now` for a state made at `created` expires: `validity` after
    the later of the two, so a clock behind the state's time still gives expires > created."""
    return max(now, created) + validity


def sign_history_snapshot(
    snapshot: HistorySnapshot, *, expires: dt.datetime, private_key: Ed25519PrivateKey
) -> bytes:
    """The wire bytes of the signed snapshot of a publisher's current state (the feed server's
    endpoint and `vpnreg feed snapshot` both sign through this)."""
    return sign_snapshot_bytes(
        session_id=snapshot.session_id,
        serial=snapshot.serial,
        entries=snapshot.entries,
        mode=snapshot.mode,
        created=snapshot.created,
        expires=expires,
        private_key=private_key,
    )


def sign_history_delta(
    session_id: str,
    step: HistoryDelta,
    *,
    expires: dt.datetime,
    private_key: Ed25519PrivateKey,
) -> dict[str, Any]:
    """The signed delta document of one step (or merged steps) of a publisher's history (the
    feed server's delta endpoint and the static feed's files both sign through this)."""
    return sign_delta(
        session_id=session_id,
        serial=step.serial,
        previous_serial=step.previous_serial,
        added=step.added,
        removed=step.removed,
        set_hash=step.set_hash,
        mode=step.mode,
        created=step.created,
        expires=expires,
        private_key=private_key,
    )


def sign_delta(
    *,
    session_id: str,
    serial: int,
    previous_serial: int,
    added: EntryTable | Iterable[AllowlistEntry],
    removed: EntryTable | Iterable[AllowlistEntry],
    set_hash: str,
    mode: EnforcementMode,
    created: dt.datetime,
    expires: dt.datetime,
    private_key: Ed25519PrivateKey,
) -> dict[str, Any]:
    """The JSON document of a signed delta; `set_hash` is that of the complete resulting set."""
    added_t, removed_t = _table(added), _table(removed)
    if not 0 < previous_serial < serial:
        raise ValueError("a delta needs 0 < previous_serial < serial")
    if added_t.version != removed_t.version:
        raise ValueError("a delta's added and removed entries must be of one version")
    header = Header(
        DocumentType.DELTA,
        session_id,
        serial,
        previous_serial,
        set_hash,
        mode,
        created,
        expires,
        changes_digest(added=added_t, removed=removed_t),
        added_t.version,
    )
    _check_header(header)
    key, signature = sign_header(header, private_key)
    return {
        **_header_json(header),
        "added": added_t.to_json_list(),
        "removed": removed_t.to_json_list(),
        "key_id": key,
        "signature": signature,
    }


def dump_document(document: Mapping[str, Any]) -> bytes:
    """Serialise a document for the wire (compact JSON, UTF-8)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# -- verifying ---------------------------------------------------------------------------------


def load_json(raw: bytes, what: str = "document") -> object:
    """Parse JSON text from untrusted bytes; every failure is a one-line MalformedDocument
    (TruncatedDocument when the input stops early), never another exception: pathological input
    (an integer of thousands of digits, nesting deeper than the interpreter's recursion limit)
    is refused like any other bad JSON. `what` names the input in the messages."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedDocument(f"{what} is not UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if _ran_out(text, exc):
            raise TruncatedDocument(f"{what} ends early: {exc.msg}") from None
        raise MalformedDocument(f"{what} is not JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:
        raise MalformedDocument(f"{what} nests too deeply") from None
    except ValueError:
        # Not a JSONDecodeError: Python's limit on the digits of an int parsed from text.
        raise MalformedDocument(f"{what} holds a number with too many digits") from None


def _ran_out(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether the parser failed because the input stopped, not because it was garbled: the
    error is at the end, inside a string that never closes, or on a cut-off literal/number."""
    tail = text[exc.pos :].rstrip()
    if not tail or exc.msg.startswith("Unterminated string"):
        return True
    return exc.msg == "Expecting value" and bool(_CUT_VALUE.fullmatch(tail))


def _session_id(value: object) -> str:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise MalformedDocument("session_id must be 32 lowercase hex characters")
    return value


def _set_hash(value: object) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise MalformedDocument("set_hash must be 64 lowercase hex characters")
    return value


def _serial(value: object, name: str, *, minimum: int) -> int:
    if type(value) is not int or not minimum <= value <= _MAX_SERIAL:
        raise MalformedDocument(f"{name} must be an integer in {minimum}..2**64-1")
    return value


def _time(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise MalformedDocument(f"{name} must be a UTC time like 2026-01-15T09:00:00Z")
    try:
        return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.UTC)
    except ValueError:
        raise MalformedDocument(f"{name} is not a valid time") from None


def _entries(value: object, name: str, version: int) -> EntryTable:
    if not isinstance(value, list):
        raise MalformedDocument(f"{name} must be a list of entries")
    table = EntryTable.from_json_list(value, version=version)
    if len(table) != len(value):
        raise MalformedDocument(f"{name} lists an entry twice")
    return table


@dataclass(frozen=True)
class _SignedFields:
    """The fields of a document's signed header as parsed, before the signature is checked."""

    kind: DocumentType
    version: int
    key: str
    signature: str
    session_id: str
    serial: int
    set_hash: str
    mode: EnforcementMode
    created: dt.datetime
    expires: dt.datetime


def _signed_fields(doc: object, *, without: frozenset[str] = frozenset()) -> _SignedFields:
    """Parse and range-check the header fields of a document (a JSON object with exactly the
    fields of its version and type, less `without`: a compact snapshot's head has no
    `entries`)."""
    if not isinstance(doc, dict):
        raise MalformedDocument("document must be a JSON object")
    version = _version(doc)
    try:
        kind = DocumentType(str(doc.get("type")))
    except ValueError:
        raise MalformedDocument("type must be 'snapshot' or 'delta'") from None
    if any(doc.get(k) in (None, "") for k in _SIGNATURE_KEYS):
        raise UnsignedDocument("document carries no key_id or no signature")
    expected = _KEYS[version][kind] - without
    if set(doc) != expected:
        missing = sorted(expected - set(doc))
        extra = sorted(set(doc) - expected)
        raise MalformedDocument(f"{kind} fields: missing {missing}, unexpected {extra}")
    key, signature = doc["key_id"], doc["signature"]
    if not isinstance(key, str) or not isinstance(signature, str):
        raise MalformedDocument("key_id and signature must be strings")
    fields = _SignedFields(
        kind=kind,
        version=version,
        key=key,
        signature=signature,
        session_id=_session_id(doc["session_id"]),
        serial=_serial(doc["serial"], "serial", minimum=1),
        set_hash=_set_hash(doc["set_hash"]),
        mode=EnforcementMode.from_json(doc["mode"]),
        created=_time(doc["created"], "created"),
        expires=_time(doc["expires"], "expires"),
    )
    if not fields.created < fields.expires:
        raise MalformedDocument("expires must be after created")
    if kind is DocumentType.SNAPSHOT and (
        doc["previous_serial"] != 0 or type(doc["previous_serial"]) is not int
    ):
        raise MalformedDocument("a snapshot's previous_serial must be 0")
    return fields


def verify_snapshot_head(
    fields: _SignedFields, *, trusted: Mapping[str, Ed25519PublicKey], now: dt.datetime
) -> None:
    """Check a snapshot header's signature and expiry; its entries are the caller's to check
    against `fields.set_hash` (the JSON entries here, a compact body in `compact`)."""
    header = Header(
        DocumentType.SNAPSHOT,
        fields.session_id,
        fields.serial,
        0,
        fields.set_hash,
        fields.mode,
        fields.created,
        fields.expires,
        version=fields.version,
    )
    verify_header(header, key=fields.key, signature=fields.signature, trusted=trusted)
    _not_expired(fields.expires, now)


def verified_snapshot(
    fields: _SignedFields, entries: EntryTable, *, hashed: bool = False
) -> VerifiedSnapshot:
    """The verified snapshot of checked `fields` and entries that hash to its set hash
    (HashMismatch otherwise; `hashed`: the caller compared them already)."""
    if not hashed and entries.set_hash() != fields.set_hash:
        raise HashMismatch("the snapshot's entries do not hash to its set_hash")
    return VerifiedSnapshot(
        fields.key,
        fields.session_id,
        fields.serial,
        fields.set_hash,
        fields.mode,
        fields.created,
        fields.expires,
        entries,
        signature=fields.signature,
    )


def verify_document(
    raw: bytes,
    *,
    trusted: Mapping[str, Ed25519PublicKey],
    now: dt.datetime,
    held: HeldState | None = None,
) -> VerifiedSnapshot | VerifiedDelta:
    """Parse and check a document completely: shape, key, signature, expiry, set hash for a
    snapshot, and (with `held`) that it is not older than the held state. Raises a FeedError."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    doc = load_json(raw)
    fields = _signed_fields(doc)
    assert isinstance(doc, dict)
    version = fields.version
    if fields.kind is DocumentType.SNAPSHOT:
        verify_snapshot_head(fields, trusted=trusted, now=now)
        entries = _entries(doc["entries"], "entries", version)
        result: VerifiedSnapshot | VerifiedDelta = verified_snapshot(fields, entries)
    else:
        previous = _serial(doc["previous_serial"], "previous_serial", minimum=1)
        if not previous < fields.serial:
            raise MalformedDocument("a delta's previous_serial must be below its serial")
        added = _entries(doc["added"], "added", version)
        removed = _entries(doc["removed"], "removed", version)
        if not added.isdisjoint(removed):
            raise MalformedDocument("a delta adds and removes the same entry")
        digest = changes_digest(added=added, removed=removed)
        header = Header(
            fields.kind,
            fields.session_id,
            fields.serial,
            previous,
            fields.set_hash,
            fields.mode,
            fields.created,
            fields.expires,
            digest,
            version,
        )
        verify_header(header, key=fields.key, signature=fields.signature, trusted=trusted)
        _not_expired(fields.expires, now)
        result = VerifiedDelta(
            fields.key,
            fields.session_id,
            fields.serial,
            previous,
            fields.set_hash,
            fields.mode,
            fields.created,
            fields.expires,
            added,
            removed,
        )
    check_not_older(held, result)
    return result


def _version(doc: dict[str, Any]) -> int:
    """The document's version: 1 without a version field (ADR 0001), else the field's value,
    which this client must read (UnsupportedVersion names what it reads)."""
    if "version" not in doc:
        return 1
    value = doc["version"]
    if type(value) is not int:
        raise MalformedDocument("version must be an integer")
    if value == 1:
        raise MalformedDocument("a version 1 document carries no version field")
    if value not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            f"feed document version {value} is not supported (this client reads {_SUPPORTED_TEXT})"
        )
    return value


def _not_expired(expires: dt.datetime, now: dt.datetime) -> None:
    if now >= expires:
        raise Expired(f"document expired at {format_time(expires)}")
