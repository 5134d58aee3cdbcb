"""What a feed signature covers: the canonical header bytes, key ids, Ed25519 sign and verify."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vpnreg.core.feed.errors import BadSignature, UnknownKey
from vpnreg.core.feed.mode import MODE_ENCODED_SIZE, EnforcementMode
from vpnreg.core.feed.sethash import EntryTable

#: Domain separation per document version: no other vpnreg signature (nor a header of another
#: feed version) can be mistaken for a feed header. Both are 15 bytes, so the layout is shared.
DOMAINS = {1: b"vpnreg.feed.v1\x00", 2: b"vpnreg.feed.v2\x00"}
DOMAIN = DOMAINS[2]
NO_CHANGES_DIGEST = bytes(32)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_HEADER = struct.Struct(f">{len(DOMAIN)}sB16sQQ32s{MODE_ENCODED_SIZE}sqq32s")
_COUNT = struct.Struct(">Q")


class DocumentType(StrEnum):
    SNAPSHOT = "snapshot"
    DELTA = "delta"


_TYPE_BYTE = {DocumentType.SNAPSHOT: 1, DocumentType.DELTA: 2}


@dataclass(frozen=True)
class Header:
    """The signed fields of a document; entries are covered by set_hash / changes_digest."""

    type: DocumentType
    session_id: str
    serial: int
    previous_serial: int
    set_hash: str
    mode: EnforcementMode
    created: dt.datetime
    expires: dt.datetime
    #: SHA-256 over a delta's added and removed records; 32 zero bytes for a snapshot.
    changes_digest: bytes = NO_CHANGES_DIGEST
    #: The document (and entry) version: 2 (ADR 0006), or 1 read by clients (ADR 0001).
    version: int = 2


def microseconds(moment: dt.datetime) -> int:
    """Microseconds since 1970-01-01T00:00Z of an aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetimes in the feed must be timezone-aware")
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def signing_bytes(header: Header) -> bytes:
    """The exact bytes the Ed25519 signature is computed over (layout in ADR 0001; the domain
    names the version, ADR 0006)."""
    return _HEADER.pack(
        DOMAINS[header.version],
        _TYPE_BYTE[header.type],
        bytes.fromhex(header.session_id),
        header.serial,
        header.previous_serial,
        bytes.fromhex(header.set_hash),
        header.mode.encode(),
        microseconds(header.created),
        microseconds(header.expires),
        header.changes_digest,
    )


def changes_digest(*, added: EntryTable, removed: EntryTable) -> bytes:
    """SHA-256 of: u64 count added, added records, u64 count removed, removed records."""
    digest = hashlib.sha256(_COUNT.pack(len(added)))
    digest.update(added.records.data)
    digest.update(_COUNT.pack(len(removed)))
    digest.update(removed.records.data)
    return digest.digest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_message(message: bytes, private_key: Ed25519PrivateKey) -> tuple[str, str]:
    """(key id, base64 signature) of canonical bytes (a header, or a static feed's
    notification, each under its own domain string)."""
    signature = private_key.sign(message)
    return key_id(private_key.public_key()), base64.b64encode(signature).decode("ascii")


def verify_message(
    message: bytes, *, key: str, signature: str, trusted: Mapping[str, Ed25519PublicKey]
) -> None:
    """Raise UnknownKey or BadSignature unless `signature` by trusted key `key` covers
    `message`."""
    public_key = trusted.get(key)
    if public_key is None:
        raise UnknownKey(f"document signed by untrusted key id {key!r}")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("signature is not valid base64") from None
    try:
        public_key.verify(raw, message)
    except InvalidSignature:
        raise BadSignature(f"signature does not verify with key {key}") from None


def sign_header(header: Header, private_key: Ed25519PrivateKey) -> tuple[str, str]:
    """(key id, base64 signature) of a header."""
    return sign_message(signing_bytes(header), private_key)


def verify_header(
    header: Header, *, key: str, signature: str, trusted: Mapping[str, Ed25519PublicKey]
) -> None:
    """Raise UnknownKey or BadSignature unless `signature` by trusted key `key` covers `header`."""
    verify_message(signing_bytes(header), key=key, signature=signature, trusted=trusted)
