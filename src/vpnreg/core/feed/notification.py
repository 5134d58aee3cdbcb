"""The static feed's signed notification (ADR 0009, shaped like RRDP's, RFC 8182).

A small document naming the current state (session, serial, set hash, state time) and the files
that carry it: the snapshot and the single-step deltas kept, each by a file name relative to
the notification, the SHA-256 of the file's bytes and the expiry of the document inside. It is
signed with the feed key over canonical bytes rebuilt from the parsed values, under its own
domain string, so no feed document can pass for a notification nor one for a document.

Pure: building and verifying bytes; writing and fetching the files is the callers' business.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vpnreg.core.feed.document import (
    _serial,
    _session_id,
    _set_hash,
    _time,
    dump_document,
    format_time,
    load_json,
)
from vpnreg.core.feed.errors import (
    Expired,
    MalformedDocument,
    UnsignedDocument,
    UnsupportedVersion,
)
from vpnreg.core.feed.signing import microseconds, sign_message, verify_message
from vpnreg.core.feed.state import HeldState, check_not_older

NOTIFICATION_DOMAIN = b"vpnreg.feed.notification.v1\x00"
NOTIFICATION_TYPE = "notification"
NOTIFICATION_VERSION = 1
#: A file name in the feed's directory: no path, no leading dot (nothing outside it, nothing
#: hidden), 128 characters at most.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEAD = struct.Struct(">16sQ32sqq")
_REF = struct.Struct(">QB")
_COUNT = struct.Struct(">I")
_KEYS = frozenset(
    {
        "type",
        "version",
        "session_id",
        "serial",
        "set_hash",
        "created",
        "expires",
        "snapshot",
        "deltas",
        "key_id",
        "signature",
    }
)
_REF_KEYS = frozenset({"serial", "uri", "hash", "expires"})
#: Most deltas a notification may list (a history keeps 256 by default).
MAX_DELTAS = 65_535


@dataclass(frozen=True)
class FileRef:
    """One file of the static feed: the serial its document ends at, its name relative to the
    notification, the SHA-256 (hex) of the file's bytes, and the document's signed expiry."""

    serial: int
    uri: str
    hash: str
    expires: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "uri": self.uri,
            "hash": self.hash,
            "expires": format_time(self.expires),
        }

    def matches(self, data: bytes) -> bool:
        return hashlib.sha256(data).hexdigest() == self.hash


@dataclass(frozen=True)
class Notification:
    """A verified notification (or one about to be signed)."""

    session_id: str
    serial: int
    set_hash: str
    created: dt.datetime
    expires: dt.datetime
    snapshot: FileRef
    #: Single-step deltas, oldest first, the last one ending at `serial`.
    deltas: tuple[FileRef, ...] = ()

    def held(self) -> HeldState:
        return HeldState(self.session_id, self.serial, self.created, self.set_hash)

    def deltas_from(self, serial: int) -> tuple[FileRef, ...] | None:
        """The delta files that bring `serial` of this session to the current serial (() when
        current), or None when the kept deltas do not reach back to it (a snapshot is needed)."""
        if serial == self.serial:
            return ()
        for i, ref in enumerate(self.deltas):
            if ref.serial == serial + 1:
                return self.deltas[i:]
        return None

    def files(self) -> tuple[FileRef, ...]:
        return (self.snapshot, *self.deltas)


#: A JSON snapshot file's suffix, and its compact twin's (ADR 0011).
_JSON_SUFFIX = ".json.gz"
COMPACT_SUFFIX = ".compact.gz"


def compact_sidecar(uri: str) -> str | None:
    """The name of the compact twin of the snapshot file `uri` (ADR 0011): beside it, the
    same name with `.compact.gz` for `.json.gz`; None for a name without that suffix. The twin
    is not in the signed notification (whose fields every ADR 0009 client checks exactly): it
    proves itself by its signed head, which must name the same state and expiry."""
    if not uri.endswith(_JSON_SUFFIX):
        return None
    return uri.removesuffix(_JSON_SUFFIX) + COMPACT_SUFFIX


def _ref_bytes(ref: FileRef) -> bytes:
    name = ref.uri.encode("ascii")
    return (
        _REF.pack(ref.serial, len(name))
        + name
        + bytes.fromhex(ref.hash)
        + struct.pack(">q", microseconds(ref.expires))
    )


def notification_signing_bytes(notification: Notification) -> bytes:
    """The bytes the notification's Ed25519 signature covers (layout in ADR 0009)."""
    parts = [
        NOTIFICATION_DOMAIN,
        _HEAD.pack(
            bytes.fromhex(notification.session_id),
            notification.serial,
            bytes.fromhex(notification.set_hash),
            microseconds(notification.created),
            microseconds(notification.expires),
        ),
        _ref_bytes(notification.snapshot),
        _COUNT.pack(len(notification.deltas)),
        *(_ref_bytes(ref) for ref in notification.deltas),
    ]
    return b"".join(parts)


def _check(notification: Notification) -> None:
    """The rules a notification must keep, whether signed here or read (MalformedDocument)."""
    if not notification.created < notification.expires:
        raise MalformedDocument("a notification's expires must be after its created")
    if notification.snapshot.serial != notification.serial:
        raise MalformedDocument("the notification's snapshot is not of its serial")
    if len(notification.deltas) > MAX_DELTAS:
        raise MalformedDocument(f"a notification lists at most {MAX_DELTAS} deltas")
    for before, after in itertools.pairwise(notification.deltas):
        if after.serial != before.serial + 1:
            raise MalformedDocument("the notification's deltas must be consecutive serials")
    if notification.deltas and (
        notification.deltas[-1].serial != notification.serial or notification.deltas[0].serial < 2
    ):
        raise MalformedDocument("the notification's deltas must end at its serial")
    names = [ref.uri for ref in notification.files()]
    if len(set(names)) != len(names):
        raise MalformedDocument("the notification names a file twice")


def sign_notification(notification: Notification, private_key: Ed25519PrivateKey) -> bytes:
    """The JSON bytes of the signed notification."""
    _session_id(notification.session_id)
    _set_hash(notification.set_hash)
    for ref in notification.files():
        _file_ref(ref.to_json(), "a file")
    _check(notification)
    key, signature = sign_message(notification_signing_bytes(notification), private_key)
    return dump_document(
        {
            "type": NOTIFICATION_TYPE,
            "version": NOTIFICATION_VERSION,
            "session_id": notification.session_id,
            "serial": notification.serial,
            "set_hash": notification.set_hash,
            "created": format_time(notification.created),
            "expires": format_time(notification.expires),
            "snapshot": notification.snapshot.to_json(),
            "deltas": [ref.to_json() for ref in notification.deltas],
            "key_id": key,
            "signature": signature,
        }
    )


def _file_ref(value: object, what: str) -> FileRef:
    if not isinstance(value, dict) or set(value) != _REF_KEYS:
        raise MalformedDocument(f"{what} must have exactly serial, uri, hash and expires")
    uri = value["uri"]
    if not isinstance(uri, str) or not _FILE_NAME.fullmatch(uri):
        raise MalformedDocument(f"{what}'s uri must be a plain file name beside the notification")
    digest = value["hash"]
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise MalformedDocument(f"{what}'s hash must be 64 lowercase hex characters")
    return FileRef(
        _serial(value["serial"], f"{what}'s serial", minimum=1),
        uri,
        digest,
        _time(value["expires"], f"{what}'s expires"),
    )


def verify_notification(
    raw: bytes,
    *,
    trusted: Mapping[str, Ed25519PublicKey],
    now: dt.datetime,
    held: HeldState | None = None,
) -> Notification:
    """Parse and check a notification completely: shape, key, signature, expiry, and (with
    `held`) that it names no state older than the one held. Raises a FeedError."""
    doc = load_json(raw, "notification")
    if not isinstance(doc, dict):
        raise MalformedDocument("the notification must be a JSON object")
    if doc.get("type") != NOTIFICATION_TYPE:
        raise MalformedDocument("this is not a notification (type must be 'notification')")
    if any(doc.get(k) in (None, "") for k in ("key_id", "signature")):
        raise UnsignedDocument("the notification carries no key_id or no signature")
    if set(doc) != _KEYS:
        missing, extra = sorted(_KEYS - set(doc)), sorted(set(doc) - _KEYS)
        raise MalformedDocument(f"notification fields: missing {missing}, unexpected {extra}")
    if type(doc["version"]) is not int:
        raise MalformedDocument("the notification's version must be an integer")
    if doc["version"] != NOTIFICATION_VERSION:
        raise UnsupportedVersion(
            f"notification version {doc['version']} is not supported "
            f"(this client reads {NOTIFICATION_VERSION})"
        )
    key, signature = doc["key_id"], doc["signature"]
    if not isinstance(key, str) or not isinstance(signature, str):
        raise MalformedDocument("key_id and signature must be strings")
    deltas = doc["deltas"]
    if not isinstance(deltas, list) or len(deltas) > MAX_DELTAS:
        raise MalformedDocument(f"deltas must be a list of at most {MAX_DELTAS} files")
    notification = Notification(
        session_id=_session_id(doc["session_id"]),
        serial=_serial(doc["serial"], "serial", minimum=1),
        set_hash=_set_hash(doc["set_hash"]),
        created=_time(doc["created"], "created"),
        expires=_time(doc["expires"], "expires"),
        snapshot=_file_ref(doc["snapshot"], "the snapshot"),
        deltas=tuple(_file_ref(d, "a delta") for d in deltas),
    )
    _check(notification)
    verify_message(
        notification_signing_bytes(notification), key=key, signature=signature, trusted=trusted
    )
    if now >= notification.expires:
        raise Expired(f"notification expired at {format_time(notification.expires)}")
    check_not_older(held, notification)
    return notification
