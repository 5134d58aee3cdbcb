"""The compact snapshot (ADR 0011): a signed snapshot carried as its canonical records.

A JSON snapshot of a million entries is about 140 MB of text that a client must parse and
re-encode, entry by entry, to recompute the set hash. The records of ADR 0001/0006 are already
canonical, and the set hash is one SHA-256 over them sorted and concatenated; so a compact
snapshot sends exactly those bytes, and the client checks them with one hash over the buffer:

| Size | Field |
|---:|---|
| 16 | magic `\\x89VPNREG-COMPACT\\n` (no JSON document starts with it) |
| 4 | u32 length of the head |
| var | head: the signed snapshot document's JSON fields except `entries` (same signature) |
| 8 | u64 number of records |
| n x 74 | the records, sorted and unique: the set hash's input, byte for byte (v1: 64 each) |
| 4 | u32 number of peer lists |
| var | each peer list, in order of its digest: u16 count k, then k sorted 18-byte encodings |

Integers are big-endian. Nothing follows the last peer list. The head carries the same signed
fields as the JSON snapshot, so one state signed at one moment has the same signature in both
forms: a verified compact snapshot converts to the JSON document without the key
(`VerifiedSnapshot.document`), and a JSON one to the compact form (`compact_of`). The peer
lists are covered by the records' peer digests (each list must hash to a digest a record names,
and every digest named must have its list).

Pure: bytes in, bytes or verified values out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Iterable, Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vpnreg.core.feed.document import (
    VerifiedSnapshot,
    _signed_fields,
    _table,
    dump_document,
    load_json,
    signed_snapshot_head,
    verified_snapshot,
    verify_snapshot_head,
)
from vpnreg.core.feed.entry import NETWORK_SIZE, AllowlistEntry, decode_network
from vpnreg.core.feed.errors import HashMismatch, MalformedDocument, TruncatedDocument
from vpnreg.core.feed.mode import EnforcementMode
from vpnreg.core.feed.sethash import EntryTable, record_format
from vpnreg.core.feed.signing import DocumentType
from vpnreg.core.feed.state import HeldState, check_not_older
from vpnreg.core.feed.versions import HistorySnapshot

__all__ = [
    "COMPACT_MEDIA_TYPE",
    "MAGIC",
    "compact_of",
    "encode_compact",
    "is_compact",
    "read_compact",
    "read_compact_body",
    "sign_compact_snapshot",
    "sign_history_compact",
    "verify_compact",
]

#: First bytes of every compact snapshot; the high first byte (as PNG's) shows a text-mode
#: transfer that mangled it, and no JSON text can start with it.
MAGIC = b"\x89VPNREG-COMPACT\n"
#: The media type the feed API serves it as (Accept / Content-Type, docs/feed-client.md).
COMPACT_MEDIA_TYPE = "application/vnd.vpnreg.compact-snapshot"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_NO_ENTRIES = frozenset({"entries"})


def is_compact(raw: bytes) -> bool:
    """Whether `raw` is a compact snapshot (by its magic; a JSON document never is)."""
    return raw[: len(MAGIC)] == MAGIC


def compact_of(snapshot: VerifiedSnapshot) -> bytes:
    """The compact form of a verified snapshot (from either form; same signature)."""
    return encode_compact(dump_document(snapshot.head()), snapshot.entries)


def encode_compact(head: bytes, table: EntryTable) -> bytes:
    """The compact bytes of `table` under the JSON `head` (a signed snapshot head, or the
    client's proof of a rebuilt set)."""
    lists = sorted(table.peers.items())
    parts = [MAGIC, _U32.pack(len(head)), head, _U64.pack(len(table)), table.records.tobytes()]
    parts.append(_U32.pack(len(lists)))
    for _digest, encoded in lists:
        parts.append(_U16.pack(len(encoded) // NETWORK_SIZE))
        parts.append(encoded)
    return b"".join(parts)


def read_compact(raw: bytes, what: str = "compact snapshot") -> tuple[object, int]:
    """(the parsed JSON head, where the body starts) of compact bytes; the body is checked by
    read_compact_body once the head says which entry version it holds."""
    if not is_compact(raw):
        raise MalformedDocument(f"{what} does not start with the compact magic")
    at = len(MAGIC)
    size = _unpack(raw, at, _U32, what)
    at += _U32.size
    if len(raw) - at < size:
        raise TruncatedDocument(f"{what} ends inside its head")
    return load_json(raw[at : at + size], f"{what} head"), at + size


def read_compact_body(
    raw: bytes, at: int, version: int, set_hash: str, what: str = "compact snapshot"
) -> EntryTable:
    """The entry table of the body starting at `at`, its records kept as a view of `raw`.

    The records must hash to `set_hash` (HashMismatch): one SHA-256 over the buffer, before
    anything else is looked at. Then the layout, the records (canonical order, each one an
    entry could have produced) and the peer lists (each hashes to a digest a record names, in
    digest order, every named digest present) are checked (MalformedDocument)."""
    fmt = record_format(version)
    count = _unpack(raw, at, _U64, what)
    at += _U64.size
    if count > (len(raw) - at) // fmt.size:
        raise TruncatedDocument(f"{what} ends inside its {count} records")
    body = memoryview(raw)[at : at + count * fmt.size]
    if hashlib.sha256(body).hexdigest() != set_hash:
        raise HashMismatch(f"the records of the {what} do not hash to its set_hash")
    records = np.frombuffer(raw, dtype=fmt.bytes_dtype, count=count, offset=at)
    at += count * fmt.size
    lists = _unpack(raw, at, _U32, what)
    at += _U32.size
    peers: dict[bytes, bytes] = {}
    previous = b""
    for _ in range(lists):
        k = _unpack(raw, at, _U16, what)
        at += _U16.size
        encoded = raw[at : at + k * NETWORK_SIZE]
        if len(encoded) != k * NETWORK_SIZE:
            raise TruncatedDocument(f"{what} ends inside a peer list")
        at += len(encoded)
        digest = hashlib.sha256(encoded).digest()
        if k == 0 or digest <= previous:
            raise MalformedDocument(f"{what}: peer lists must be non-empty, in digest order")
        _check_peer_list(encoded, what)
        peers[digest] = encoded
        previous = digest
    if at != len(raw):
        raise MalformedDocument(f"{what}: {len(raw) - at} bytes after the last peer list")
    try:
        return EntryTable.from_sorted_records(records, peers, version=version)
    except ValueError as exc:
        raise MalformedDocument(f"{what}: {exc}") from None


def _check_peer_list(encoded: bytes, what: str) -> None:
    networks = [encoded[j : j + NETWORK_SIZE] for j in range(0, len(encoded), NETWORK_SIZE)]
    if networks != sorted(set(networks)):
        raise MalformedDocument(f"{what}: a peer list is not sorted and unique")
    try:
        for network in networks:
            decode_network(network)
    except ValueError as exc:
        raise MalformedDocument(f"{what}: bad peer network: {exc}") from None


def _unpack(raw: bytes, at: int, field: struct.Struct, what: str) -> int:
    if len(raw) - at < field.size:
        raise TruncatedDocument(f"{what} ends early")
    value: int = field.unpack_from(raw, at)[0]
    return value


def verify_compact(
    raw: bytes,
    *,
    trusted: Mapping[str, Ed25519PublicKey],
    now: dt.datetime,
    held: HeldState | None = None,
) -> VerifiedSnapshot:
    """Check a compact snapshot completely, as verify_document checks a JSON one: head shape,
    key, signature and expiry first, then the set hash as one SHA-256 over the records, then
    the body's layout; with `held`, that it is not older. Raises a FeedError."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    head, at = read_compact(raw)
    fields = _signed_fields(head, without=_NO_ENTRIES)
    if fields.kind is not DocumentType.SNAPSHOT:
        raise MalformedDocument("a compact snapshot's head must be a snapshot's")
    verify_snapshot_head(fields, trusted=trusted, now=now)
    entries = read_compact_body(raw, at, fields.version, fields.set_hash)
    snapshot = verified_snapshot(fields, entries, hashed=True)
    check_not_older(held, snapshot)
    return snapshot


def sign_compact_snapshot(
    *,
    session_id: str,
    serial: int,
    entries: EntryTable | Iterable[AllowlistEntry],
    mode: EnforcementMode,
    created: dt.datetime,
    expires: dt.datetime,
    private_key: Ed25519PrivateKey,
) -> bytes:
    """The compact bytes of a signed snapshot (the head sign_snapshot_bytes signs)."""
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
    return encode_compact(dump_document(head), table)


def sign_history_compact(
    snapshot: HistorySnapshot, *, expires: dt.datetime, private_key: Ed25519PrivateKey
) -> bytes:
    """The compact snapshot of a publisher's current state (sign_history_snapshot's twin)."""
    return sign_compact_snapshot(
        session_id=snapshot.session_id,
        serial=snapshot.serial,
        entries=snapshot.entries,
        mode=snapshot.mode,
        created=snapshot.created,
        expires=expires,
        private_key=private_key,
    )
