"""The audit trail as a hash chain: canonical JSON, record hashes, and chain verification.

Each record's hash covers its own fields and the previous record's hash, so changing, removing,
inserting or reordering a stored record breaks the chain at (or just before) that record.
See docs/adr/0003-audit-hash-chain.md for what this does and does not protect against.

Two hash versions live in one chain. Version 1 (ADR 0003) hashes the fields themselves.
Version 2 (ADR 0008) hashes the public fields (seq, time, action, object, prev_hash) and, for
the actor and each key of the before/after snapshots, a digest salted per event, so a public
export can show a field in clear (with its field salt) or only its digest, and anyone can still
recompute the record's hash. The event salt is the caller's (this module draws no randomness).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import TypeAlias

GENESIS_HASH = "0" * 64

#: Version 1 hashes the canonical JSON of every field (ADR 0003).
HASH_V1 = 1
#: Version 2 hashes each personal-bearing field through a salted digest (ADR 0008).
HASH_V2 = 2
HASH_VERSIONS = frozenset({HASH_V1, HASH_V2})
#: Bytes of random salt a version 2 event carries (the caller draws them).
SALT_BYTES = 16
#: Domain separation of the two version 2 hashes: a field digest never equals a field salt.
_FIELD_SALT_DOMAIN = b"vpnreg.audit.field-salt.v2\x00"
_FIELD_DIGEST_DOMAIN = b"vpnreg.audit.field.v2\x00"

#: What before/after snapshots may hold (canonical_json accepts exactly these, recursively).
JSON: TypeAlias = (
    "Mapping[str, JSON] | Sequence[JSON] | str | int | bool | Decimal | dt.datetime | dt.date | "
    "uuid.UUID | ipaddress.IPv4Network | ipaddress.IPv6Network | ipaddress.IPv4Address | "
    "ipaddress.IPv6Address | None"
)

_IP_TYPES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


class _Refused(Exception):
    """Raised inside the walk; the path is collected on the way out, so the common case of an
    acceptable value pays nothing for error messages."""

    def __init__(self, error: type[Exception], detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.path: list[str] = []


def _plain(value: object) -> object:
    """Turn `value` into only dict/list/str/int/bool/None, each choice fixed and documented."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if isinstance(value, Enum):
        # A StrEnum member stands for its value, which is what a database column stores.
        return _plain(value.value)
    if isinstance(value, dict | Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                # json would turn 1 into "1" and make {1: x} and {"1": x} collide.
                raise _Refused(TypeError, f"key {key!r} is not a str")
            try:
                out[str(key)] = _plain(item)
            except _Refused as refused:
                refused.path.append(f".{key}")
                raise
        return out
    if isinstance(value, list | tuple):
        items: list[object] = []
        for i, item in enumerate(value):
            try:
                items.append(_plain(item))
            except _Refused as refused:
                refused.path.append(f"[{i}]")
                raise
        return items
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        # Floats round-trip differently between languages and invite 0.1 + 0.2; the chain must
        # be verifiable by anyone, so amounts travel as Decimal (a string) or int.
        raise _Refused(TypeError, f"float {value!r} is not accepted; use Decimal or int")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Refused(ValueError, f"Decimal {value} is not finite")
        # A string keeps the scale (1.10 stays "1.10"), which a JSON number would not promise.
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _Refused(ValueError, f"naive datetime {value.isoformat()} has no time zone")
        text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        return text + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, *_IP_TYPES)):
        return str(value)
    raise _Refused(TypeError, f"{kind.__name__} is not supported in canonical JSON")


def canonical_json(value: object) -> bytes:
    """The one byte form of `value` that gets hashed.

    Keys sorted (by code point), no whitespace, UTF-8 without \\u escapes for non-ASCII.
    datetime: aware only, as UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ" (always six fraction digits).
    date: "YYYY-MM-DD". Decimal: its str (scale kept), finite only. float: refused (TypeError).
    UUID and ipaddress objects: their str. tuple: a list. Enum member: its value. Other types (set,
    bytes, time, objects) raise TypeError; naive datetimes and non-finite Decimals ValueError.
    Errors name the path of the bad value, as in "$.after.rate[1]". Strings with lone surrogates
    cannot be UTF-8 and raise UnicodeEncodeError (a ValueError).
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        # The common case of a version 2 field digest: the same bytes, without the walk.
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    try:
        plain = _plain(value)
    except _Refused as refused:
        path = "$" + "".join(reversed(refused.path))
        raise refused.error(f"{path}: {refused.detail}") from None
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def utc_text(moment: dt.datetime) -> str:
    """An aware datetime as canonical_json writes it: UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ"."""
    return canonical_json(moment).decode("utf-8")[1:-1]


@dataclass(frozen=True)
class AuditRecord:
    """One stored audit event with its place in the chain."""

    seq: int
    time: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: JSON | None
    after: JSON | None
    prev_hash: str
    hash: str
    #: HASH_V1 or HASH_V2; a stored record of another number cannot be hashed (malformed).
    version: int = HASH_V1
    #: The event's random salt (version 2 only; None for version 1).
    salt: bytes | None = None


def field_salt(event_salt: bytes, path: Sequence[str]) -> bytes:
    """The salt of one field of an event: SHA-256 over the event salt and the field's path
    (["actor"], ["after", "state"], ["before"] for a snapshot that is not an object).

    An export that shows a field in clear shows this salt with it; the one-way derivation keeps
    the event salt, and so every other field's salt, secret.
    """
    digest = hashlib.sha256(_FIELD_SALT_DOMAIN + event_salt)
    for part in path:
        # Length-prefixed parts: ("a", "bc") and ("ab", "c") never share an encoding.
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
    return digest.digest()


def field_digest(salt: bytes, value: object) -> str:
    """Hex SHA-256 committing to one field's value under its field salt."""
    return hashlib.sha256(_FIELD_DIGEST_DOMAIN + salt + canonical_json(value)).hexdigest()


#: How a version 2 record commits to a snapshot: None, {"map": {key: digest}} for an object,
#: {"whole": digest} for anything else.
Commitment: TypeAlias = "dict[str, str | dict[str, str]] | None"


def commit_snapshot(event_salt: bytes, section: str, value: object) -> Commitment:
    """The commitment to a before/after snapshot: one digest per key of an object (so keys can
    be disclosed one by one), else one digest of the whole value."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        digests: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"$.{section}: key {key!r} is not a str")
            digests[key] = field_digest(field_salt(event_salt, [section, key]), item)
        return {"map": digests}
    return {"whole": field_digest(field_salt(event_salt, [section]), value)}


def committed_hash(
    *,
    seq: int,
    time: dt.datetime,
    action: str,
    object_type: str,
    object_id: str,
    prev_hash: str,
    actor_digest: str,
    before: Commitment,
    after: Commitment,
) -> str:
    """Hex SHA-256 of a version 2 record from its public fields and its fields' commitments.

    What the registry computes from the stored row and an outside verifier from an export.
    """
    _check_fields(seq, time, action, object_type, object_id, prev_hash)
    body = {
        "v": HASH_V2,
        "seq": seq,
        "time": time,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "prev_hash": prev_hash,
        "actor": actor_digest,
        "before": before,
        "after": after,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _check_fields(
    seq: int, time: dt.datetime, action: str, object_type: str, object_id: str, prev_hash: str
) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"seq must be a positive int, got {seq!r}")
    for name, text in (
        ("action", action),
        ("object_type", object_type),
        ("object_id", object_id),
        ("prev_hash", prev_hash),
    ):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not isinstance(time, dt.datetime):
        raise TypeError(f"time must be a datetime, got {type(time).__name__}")


def record_hash(
    *,
    seq: int,
    time: dt.datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: JSON | None,
    after: JSON | None,
    prev_hash: str,
    version: int = HASH_V1,
    salt: bytes | None = None,
) -> str:
    """Hex SHA-256 of a record, by its hash version.

    Version 1: the canonical JSON of every field except its own hash. Version 2: the public
    fields plus salted digests of the actor and of each snapshot key (committed_hash); `salt`
    is the event's salt, SALT_BYTES long. A salt on a version 1 record, a missing or short one
    on version 2, or an unknown version raise ValueError: the row cannot be trusted.
    """
    _check_fields(seq, time, action, object_type, object_id, prev_hash)
    if not isinstance(actor, str):
        raise TypeError(f"actor must be a str, got {type(actor).__name__}")
    if version == HASH_V1 and not isinstance(version, bool):
        if salt is not None:
            raise ValueError("a version 1 record carries no salt")
        body = {
            "seq": seq,
            "time": time,
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "before": before,
            "after": after,
            "prev_hash": prev_hash,
        }
        return hashlib.sha256(canonical_json(body)).hexdigest()
    if version == HASH_V2 and not isinstance(version, bool):
        if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
            raise ValueError(f"a version 2 record needs a salt of {SALT_BYTES} bytes")
        return committed_hash(
            seq=seq,
            time=time,
            action=action,
            object_type=object_type,
            object_id=object_id,
            prev_hash=prev_hash,
            actor_digest=field_digest(field_salt(salt, ["actor"]), actor),
            before=commit_snapshot(salt, "before", before),
            after=commit_snapshot(salt, "after", after),
        )
    raise ValueError(f"unknown hash version {version!r}")


def next_record(
    prev: AuditRecord | None,
    *,
    time: dt.datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: JSON | None,
    after: JSON | None,
    salt: bytes | None = None,
) -> AuditRecord:
    """The record that follows `prev` (or starts the chain when `prev` is None): hash version 2
    with `salt` (the caller's random SALT_BYTES), version 1 without."""
    version = HASH_V1 if salt is None else HASH_V2
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    digest = record_hash(
        seq=seq,
        time=time,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        prev_hash=prev_hash,
        version=version,
        salt=salt,
    )
    return AuditRecord(
        seq=seq,
        time=time,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        prev_hash=prev_hash,
        hash=digest,
        version=version,
        salt=salt,
    )


@dataclass(frozen=True)
class ChainProblem:
    """The first place the chain cannot be trusted.

    `seq` is the sequence number the chain expected there, which is the original number of the
    tampered event (all earlier records checked out, so position and number still agree).
    `kind` is one of: modified, malformed, deleted, inserted, duplicated, reordered,
    bad_prev_hash, bad_seq.
    """

    seq: int
    kind: str
    message: str


def _recomputed(record: AuditRecord) -> str:
    return record_hash(
        seq=record.seq,
        time=record.time,
        actor=record.actor,
        action=record.action,
        object_type=record.object_type,
        object_id=record.object_id,
        before=record.before,
        after=record.after,
        prev_hash=record.prev_hash,
        version=record.version,
        salt=record.salt,
    )


def _describe(record: AuditRecord) -> str:
    return f"{record.action} {record.object_type} {record.object_id} by {record.actor}"


def _pairs(records: Iterable[AuditRecord]) -> Iterator[tuple[AuditRecord, AuditRecord | None]]:
    """Each record with the one stored after it: one record of look-ahead, still streaming."""
    it = iter(records)
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        yield current, following
        current = following


def _check(
    record: AuditRecord,
    following: AuditRecord | None,
    previous: AuditRecord | None,
    expected_seq: int,
    expected_prev: str,
) -> ChainProblem | None:
    e = expected_seq
    try:
        recomputed = _recomputed(record)
    except (TypeError, ValueError) as exc:
        what = _describe(record)
        return ChainProblem(e, "malformed", f"event {e} ({what}) cannot be hashed: {exc}")
    if recomputed == record.hash and record.seq == e and record.prev_hash == expected_prev:
        return None
    what = _describe(record)
    if recomputed != record.hash:
        return ChainProblem(
            e,
            "modified",
            f"event {e} ({what}) was modified: its stored hash does not match its content",
        )
    links = record.prev_hash == expected_prev
    # The record stored next is the one that should be here, and it links to what came before.
    next_belongs_here = (
        following is not None and following.seq == e and following.prev_hash == expected_prev
    )
    if record.seq == e:
        if links:
            return None
        if next_belongs_here:
            return ChainProblem(
                e, "inserted", f"an event claiming seq {e} ({what}) was inserted before event {e}"
            )
        return ChainProblem(
            e,
            "bad_prev_hash",
            f"event {e} ({what}) does not link to event {e - 1}: "
            f"event {e - 1} was rewritten, or event {e} was forged",
        )
    if record.seq > e:
        if next_belongs_here:
            assert following is not None
            if record.seq == e + 1 and record.prev_hash == following.hash:
                return ChainProblem(
                    e,
                    "reordered",
                    f"events {e} and {e + 1} are stored in the wrong order ({what} is first)",
                )
            return ChainProblem(
                e,
                "inserted",
                f"an event claiming seq {record.seq} ({what}) was inserted or moved "
                f"before event {e}",
            )
        if links:
            return ChainProblem(
                e,
                "bad_seq",
                f"event {e} ({what}) was renumbered to {record.seq} and re-hashed",
            )
        missing = f"event {e} is" if record.seq == e + 1 else f"events {e}..{record.seq - 1} are"
        return ChainProblem(
            e, "deleted", f"{missing} missing: the next stored event is {record.seq} ({what})"
        )
    # record.seq < e: a number seen already.
    if previous is not None and record.seq == previous.seq:
        if record.hash == previous.hash:
            return ChainProblem(
                previous.seq, "duplicated", f"event {previous.seq} ({what}) is stored twice"
            )
        if record.prev_hash == previous.prev_hash:
            return ChainProblem(
                previous.seq,
                "inserted",
                f"two events claim seq {previous.seq} after the same predecessor: "
                f"{_describe(previous)} / {what}; one was inserted",
            )
    return ChainProblem(
        e, "reordered", f"event {record.seq} ({what}) is stored where event {e} belongs"
    )


def verify_chain(records: Iterable[AuditRecord]) -> ChainProblem | None:
    """The first problem in `records` (in stored order), or None if the chain holds.

    Streaming: it holds two records at a time, so it can check millions from a cursor. It
    cannot see records cut off the end; that needs the head hash published elsewhere (ADR 0003).
    """
    expected_seq = 1
    expected_prev = GENESIS_HASH
    previous: AuditRecord | None = None
    for record, following in _pairs(records):
        problem = _check(record, following, previous, expected_seq, expected_prev)
        if problem is not None:
            return problem
        previous = record
        expected_seq += 1
        expected_prev = record.hash
    return None
