"""The compact snapshot (ADR 0011): the same signed state as the JSON snapshot, as records;
every tampering is refused with its own error class."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given

from tests.core.feed.strategies import SESSION, entry_sets, fixed_key
from vpnreg.core.feed import (
    AllowlistEntry,
    BadSignature,
    EnforcementMode,
    EntryTable,
    Expired,
    FeedError,
    HashMismatch,
    HeldState,
    MalformedDocument,
    Rollback,
    TruncatedDocument,
    UnknownKey,
    UnsupportedVersion,
    VerifiedSnapshot,
    compact_of,
    dump_document,
    is_compact,
    key_id,
    sign_compact_snapshot,
    sign_snapshot_bytes,
    verify_compact,
    verify_document,
)
from vpnreg.core.feed.compact import MAGIC, encode_compact, read_compact, read_compact_body
from vpnreg.core.feed.signing import DocumentType, Header, sign_header

KEY = fixed_key("compact-tests")
OTHER = fixed_key("compact-tests-other")
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}
NOW = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=1)
UNTIL = dt.datetime(2027, 1, 31, 19, tzinfo=dt.UTC)


def entry(prefix: str, registration_id: int, *peers: str) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=ipaddress.ip_network(prefix),
        peers=tuple(ipaddress.ip_network(p) for p in peers),
        registration_id=registration_id,
        valid_until=UNTIL,
    )


ENTRIES = EntryTable.from_entries(
    [
        entry("192.0.2.0/24", 1),
        entry("198.51.100.0/24", 2, "203.0.113.0/24", "2001:db8:1::/48"),
        entry("198.51.100.0/25", 5, "203.0.113.0/24", "2001:db8:1::/48"),
        entry("2001:db8::/32", 3, "192.0.2.128/25"),
        entry("203.0.113.0/24", 4),
    ]
)


def signing(entries: EntryTable = ENTRIES, **overrides: Any) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "serial": 7,
        "entries": entries,
        "mode": EnforcementMode.enforce_all(),
        "created": NOW,
        "expires": LATER,
        "private_key": KEY,
        **overrides,
    }


def compact(entries: EntryTable = ENTRIES, **overrides: Any) -> bytes:
    return sign_compact_snapshot(**signing(entries, **overrides))


def test_round_trip_and_the_json_form_carry_the_same_signature() -> None:
    raw = compact()
    assert is_compact(raw) and not is_compact(sign_snapshot_bytes(**signing()))
    snap = verify_compact(raw, trusted=TRUSTED, now=NOW)
    assert (snap.session_id, snap.serial, snap.set_hash) == (SESSION, 7, ENTRIES.set_hash())
    assert snap.entries == ENTRIES and snap.entries.to_entries() == ENTRIES.to_entries()
    # one state signed at one moment: byte for byte the JSON document the signer would send
    assert snap.document() == sign_snapshot_bytes(**signing())
    from_json = verify_document(snap.document(), trusted=TRUSTED, now=NOW)
    assert isinstance(from_json, VerifiedSnapshot)
    assert from_json.signature == snap.signature and compact_of(from_json) == raw


def test_the_records_are_the_set_hash_input_byte_for_byte() -> None:
    raw = compact()
    _, at = read_compact(raw)
    records = raw[at + 8 : at + 8 + len(ENTRIES) * 74]
    assert hashlib.sha256(records).hexdigest() == ENTRIES.set_hash()


@given(entry_sets)
def test_any_entry_set_round_trips(entries: list[AllowlistEntry]) -> None:
    table = EntryTable.from_entries(entries)
    snap = verify_compact(compact(table), trusted=TRUSTED, now=NOW)
    assert snap.entries == table and dict(snap.entries.peers) == dict(table.peers)
    assert set(snap.entries.to_entries()) == set(entries)


def _records_at(raw: bytes) -> int:
    _, at = read_compact(raw)
    return at + 8


def flip_record_byte(raw: bytes) -> bytes:
    at = _records_at(raw) + 74 + 20  # inside the second record's registration id
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


def flip_peer_byte(raw: bytes) -> bytes:
    at = len(raw) - 3  # inside the last peer list
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


def drop_a_peer_list(raw: bytes) -> bytes:
    at = _records_at(raw) + len(ENTRIES) * 74
    (lists,) = struct.unpack_from(">I", raw, at)
    (k,) = struct.unpack_from(">H", raw, at + 4)
    return raw[:at] + struct.pack(">I", lists - 1) + raw[at + 4 + 2 + k * 18 :]


def edit_head(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def edit(raw: bytes) -> bytes:
        head, at = read_compact(raw)
        assert isinstance(head, dict)
        change(head)
        return encode_compact(dump_document(head), _body_table(raw, at))

    return edit


def _body_table(raw: bytes, at: int) -> EntryTable:
    return read_compact_body(raw, at, 2, ENTRIES.set_hash())


def _set(name: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda head: head.__setitem__(name, value)


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        pytest.param(flip_record_byte, HashMismatch, id="record-byte"),
        pytest.param(flip_peer_byte, MalformedDocument, id="peer-byte"),
        pytest.param(drop_a_peer_list, MalformedDocument, id="peer-list-dropped"),
        pytest.param(lambda r: r[:-1], TruncatedDocument, id="cut-in-peers"),
        pytest.param(lambda r: r[: len(r) // 2], TruncatedDocument, id="cut-in-records"),
        pytest.param(lambda r: r[: len(MAGIC) + 10], TruncatedDocument, id="cut-in-head"),
        pytest.param(lambda r: r + b"\0", MalformedDocument, id="trailing-byte"),
        pytest.param(lambda r: b"\x88" + r[1:], MalformedDocument, id="magic"),
        pytest.param(edit_head(_set("serial", 8)), BadSignature, id="head-serial"),
        pytest.param(edit_head(_set("entries", [])), MalformedDocument, id="head-entries"),
        pytest.param(edit_head(_set("type", "delta")), MalformedDocument, id="head-delta"),
        pytest.param(edit_head(_set("version", 3)), UnsupportedVersion, id="head-version"),
        pytest.param(edit_head(lambda h: h.pop("signature")), FeedError, id="head-unsigned"),
    ],
)
def test_tampering_is_refused(tamper: Callable[[bytes], bytes], error: type[FeedError]) -> None:
    with pytest.raises(error):
        verify_compact(tamper(compact()), trusted=TRUSTED, now=NOW)


def test_key_expiry_and_rollback_are_checked_as_for_json() -> None:
    with pytest.raises(UnknownKey):
        verify_compact(compact(private_key=OTHER), trusted=TRUSTED, now=NOW)
    with pytest.raises(Expired):
        verify_compact(compact(), trusted=TRUSTED, now=LATER)
    newer = HeldState(SESSION, 8, NOW, "0" * 64)
    with pytest.raises(Rollback):
        verify_compact(compact(), trusted=TRUSTED, now=NOW, held=newer)


def _signed_over(records: bytes, peers: dict[bytes, bytes]) -> bytes:
    """A body the signer's own key vouches for although no EntryTable could have made it."""
    digest = hashlib.sha256(records).hexdigest()
    mode = EnforcementMode.enforce_all()
    header = Header(DocumentType.SNAPSHOT, SESSION, 7, 0, digest, mode, NOW, LATER)
    key, signature = sign_header(header, KEY)
    head = {
        "type": "snapshot",
        "version": 2,
        "session_id": SESSION,
        "serial": 7,
        "previous_serial": 0,
        "set_hash": digest,
        "mode": mode.to_json(),
        "created": "2026-01-15T09:00:00Z",
        "expires": "2026-01-16T09:00:00Z",
        "key_id": key,
        "signature": signature,
    }
    fake = EntryTable.from_entries([])
    lists = sorted(peers.items())
    out = encode_compact(dump_document(head), fake)
    body = struct.pack(">Q", len(records) // 74) + records + struct.pack(">I", len(lists))
    for _digest, encoded in lists:
        body += struct.pack(">H", len(encoded) // 18) + encoded
    _, at = read_compact(out)
    return out[:at] + body


def test_a_signed_body_out_of_canonical_order_is_refused() -> None:
    # the signature and the set hash both check: the client still keeps the table's invariants
    raw = ENTRIES.encoded()
    records = b"".join(reversed([raw[i : i + 74] for i in range(0, len(raw), 74)]))
    with pytest.raises(MalformedDocument, match="canonical order"):
        verify_compact(_signed_over(records, dict(ENTRIES.peers)), trusted=TRUSTED, now=NOW)
    exact = ENTRIES.encoded()
    assert verify_compact(_signed_over(exact, dict(ENTRIES.peers)), trusted=TRUSTED, now=NOW)


def test_a_signed_body_with_a_peer_list_no_record_names_is_refused() -> None:
    extra = {**ENTRIES.peers, hashlib.sha256(b"\x04" + bytes(17)).digest(): b"\x04" + bytes(17)}
    with pytest.raises(MalformedDocument):
        verify_compact(_signed_over(ENTRIES.encoded(), extra), trusted=TRUSTED, now=NOW)


def test_a_v1_snapshot_converts_and_stays_v1() -> None:
    """A client holding a v1 copy (ADR 0006) keeps it in the compact form too."""
    vectors = json.loads((Path(__file__).parents[2] / "vectors" / "feed.json").read_text())
    signing_vectors = vectors["signing"]
    seed = bytes.fromhex(signing_vectors["private_key_seed"])
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    trusted = {key_id(public): public}
    now = dt.datetime.fromisoformat(signing_vectors["now"].replace("Z", "+00:00"))
    raw = dump_document(signing_vectors["snapshot"]["document"])
    v1 = verify_document(raw, trusted=trusted, now=now)
    assert isinstance(v1, VerifiedSnapshot) and v1.version == 1
    again = verify_compact(compact_of(v1), trusted=trusted, now=now)
    assert again.version == 1 and again.entries == v1.entries
    assert verify_document(again.document(), trusted=trusted, now=now).set_hash == v1.set_hash
