"""Signed checkpoints of the audit chain: what is signed, signing, and checking them.

A checkpoint says "at `time` the audit log held `count` events and the newest had hash `head`",
signed with the feed's Ed25519 key, so gateways and the public check it with the `feed.pub` they
already trust. Checkpoints are chained too: each signs the digest of the one before it, so a
checkpoint cannot be rewritten without rewriting every later one, and a copy anyone kept shows
the change. The layout of the signed bytes is in ADR 0008
(docs/adr/0008-audit-checkpoints-and-public-export.md).
Pure: the caller passes the key, the time and the chain's head.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import itertools
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vpnreg.core.audit import utc_text
from vpnreg.core.feed.signing import key_id, microseconds

#: Domain separation: a checkpoint signature is never valid as a feed header and vice versa.
DOMAIN = b"vpnreg.audit-checkpoint.v1\x00"
#: The `previous` of the first checkpoint.
NO_PREVIOUS = "0" * 64
#: Domain, number, count, head, time in microseconds since the epoch, previous digest.
_LAYOUT = struct.Struct(f">{len(DOMAIN)}sQQ32sq32s")
_HEX64 = frozenset("0123456789abcdef")


class CheckpointError(ValueError):
    """A checkpoint that is malformed, badly signed, or inconsistent with another (one line)."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement of the chain's length and head.

    `number` counts checkpoints from 1; `head` is the hash of event `count` (GENESIS_HASH for an
    empty log); `previous` is the digest of checkpoint `number - 1` (NO_PREVIOUS for the first).
    """

    number: int
    count: int
    head: str
    time: dt.datetime
    previous: str
    key_id: str
    signature: str

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the signed bytes: what the next checkpoint names as `previous`."""
        return hashlib.sha256(signing_bytes(self)).hexdigest()

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "count": self.count,
            "head": self.head,
            "time": utc_text(self.time),
            "previous": self.previous,
            "digest": self.digest,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def _hex64(name: str, value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX64:
        raise CheckpointError(f"{name} must be 64 lowercase hex digits, got {value!r}")
    return bytes.fromhex(value)


def signing_bytes(checkpoint: Checkpoint) -> bytes:
    """The exact bytes a checkpoint's signature covers (layout in ADR 0008); CheckpointError
    when a field is out of its range or malformed."""
    for name, value in (("number", checkpoint.number), ("count", checkpoint.count)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise CheckpointError(f"{name} must be a non-negative integer, got {value!r}")
    if checkpoint.number < 1:
        raise CheckpointError(f"number must be at least 1, got {checkpoint.number}")
    try:
        when = microseconds(checkpoint.time)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"time: {err}") from None
    return _LAYOUT.pack(
        DOMAIN,
        checkpoint.number,
        checkpoint.count,
        _hex64("head", checkpoint.head),
        when,
        _hex64("previous", checkpoint.previous),
    )


def sign_checkpoint(
    *,
    number: int,
    count: int,
    head: str,
    time: dt.datetime,
    previous: str,
    private_key: Ed25519PrivateKey,
) -> Checkpoint:
    """A checkpoint signed with `private_key` (the feed's)."""
    unsigned = Checkpoint(
        number=number,
        count=count,
        head=head,
        time=time,
        previous=previous,
        key_id=key_id(private_key.public_key()),
        signature="",
    )
    signature = private_key.sign(signing_bytes(unsigned))
    return dataclasses.replace(unsigned, signature=base64.b64encode(signature).decode("ascii"))


def parse_checkpoint(data: object) -> Checkpoint:
    """A checkpoint from its JSON form (to_json); CheckpointError names what is wrong."""
    if not isinstance(data, Mapping):
        raise CheckpointError("a checkpoint must be a JSON object")
    fields = ("number", "count", "head", "time", "previous", "key_id", "signature")
    missing = [name for name in fields if name not in data]
    if missing:
        raise CheckpointError(f"checkpoint lacks {', '.join(missing)}")
    time = data["time"]
    try:
        moment = dt.datetime.fromisoformat(time) if isinstance(time, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CheckpointError(f"checkpoint time {time!r} is not an ISO time with a zone")
    for name in ("key_id", "signature"):
        if not isinstance(data[name], str):
            raise CheckpointError(f"checkpoint {name} must be a string")
    checkpoint = Checkpoint(
        number=data["number"],
        count=data["count"],
        head=data["head"],
        time=moment,
        previous=data["previous"],
        key_id=data["key_id"],
        signature=data["signature"],
    )
    signing_bytes(checkpoint)  # checks every field's type and range
    return checkpoint


def verify_signature(checkpoint: Checkpoint, trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """Raise CheckpointError unless a trusted key signed exactly this checkpoint."""
    public_key = trusted.get(checkpoint.key_id)
    if public_key is None:
        raise CheckpointError(
            f"checkpoint {checkpoint.number} is signed by untrusted key {checkpoint.key_id!r}"
        )
    try:
        raw = base64.b64decode(checkpoint.signature, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(
            f"checkpoint {checkpoint.number}: signature is not valid base64"
        ) from None
    try:
        public_key.verify(raw, signing_bytes(checkpoint))
    except InvalidSignature:
        raise CheckpointError(
            f"checkpoint {checkpoint.number}: signature does not verify with key "
            f"{checkpoint.key_id}"
        ) from None


def check_history(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    """The distinct checkpoints in number order, or CheckpointError at the first sign of a
    rewritten one: two different checkpoints with one number, a checkpoint not naming its
    predecessor's digest, a count that shrinks or a time that does not move forward."""
    by_number: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        seen = by_number.setdefault(checkpoint.number, checkpoint)
        if seen != checkpoint:
            raise CheckpointError(
                f"checkpoint {checkpoint.number} was rewritten: two different versions are signed "
                f"(counts {seen.count} and {checkpoint.count})"
            )
    ordered = [by_number[n] for n in sorted(by_number)]
    for earlier, later in itertools.pairwise(ordered):
        if later.count < earlier.count:
            raise CheckpointError(
                f"checkpoint {later.number} counts {later.count} events, fewer than checkpoint "
                f"{earlier.number} ({earlier.count}): events were removed"
            )
        if later.time <= earlier.time:
            raise CheckpointError(
                f"checkpoint {later.number} is not later than checkpoint {earlier.number}"
            )
        if later.number == earlier.number + 1 and later.previous != earlier.digest:
            raise CheckpointError(
                f"checkpoint {later.number} does not name checkpoint {earlier.number}'s digest: "
                f"one of them was rewritten"
            )
    if ordered and ordered[0].number == 1 and ordered[0].previous != NO_PREVIOUS:
        raise CheckpointError("checkpoint 1 names a predecessor")
    return ordered
