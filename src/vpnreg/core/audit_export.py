"""The public export of the audit log, and checking it against signed checkpoints from outside.

One JSON object per event (JSON Lines). The disclosure rule (ADR 0008): the action, the object's
type and id, the time and the hashes are always in clear; the actor only when it is not a person
("system", "cli:..."); of the before/after snapshots only the keys in PUBLIC_KEYS (states,
versions, categories, numeric ids, tracking numbers, dates, codes). Everything else (names,
usernames, registration and national id digits, reasons, prefixes, file hashes, unknown keys)
appears only as its salted digest, which is enough to recompute the record's hash and useless
for guessing the value (its salt is not exported).

Events hashed before transparency (version 1) hash their fields directly: one is exported in
clear only when none of its fields is personal, otherwise as its hashes alone (a link of the
chain the next event's prev_hash covers; its content cannot be checked from outside).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vpnreg.core.audit import (
    GENESIS_HASH,
    HASH_V1,
    HASH_V2,
    AuditRecord,
    Commitment,
    canonical_json,
    committed_hash,
    field_digest,
    field_salt,
    record_hash,
    utc_text,
)
from vpnreg.core.audit_checkpoint import Checkpoint, CheckpointError, check_history
from vpnreg.core.audit_checkpoint import verify_signature as verify_checkpoint_signature

#: Snapshot keys whose values are public: they describe the registry's working, not a person.
PUBLIC_KEYS = frozenset(
    {
        "id",
        "state",
        "version",
        "category",
        "categories",
        "tracking_number",
        "organisation_id",
        "isp_id",
        "sector_body_id",
        "user_id",
        "renews_id",
        "renews",
        "rejected_from",
        "valid_from",
        "valid_until",
        "reason_code",
        "role",
        "active",
        "expires_at",
        "revoked_at",
        "session_id",
        "serial",
        "document",
        "kind",
        "amendment",
    }
)
#: What a version 1 event that is not disclosed says instead of its fields.
BEFORE_TRANSPARENCY = "before transparency"
_HEX = frozenset("0123456789abcdef")


class ExportError(ValueError):
    """The export is malformed or inconsistent with itself or a checkpoint (one line)."""


def public_actor(actor: str) -> bool:
    """Actors that are the system or an operator's command, not a person."""
    return actor == "system" or actor.startswith("cli:")


def _field(event_salt: bytes, path: list[str], value: object, shown: bool) -> dict[str, object]:
    salt = field_salt(event_salt, path)
    if shown:
        return {"value": value, "salt": salt.hex()}
    return {"digest": field_digest(salt, value)}


def _snapshot(event_salt: bytes, section: str, value: object) -> dict[str, object] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {
            "map": {
                key: _field(event_salt, [section, key], item, key in PUBLIC_KEYS)
                for key, item in value.items()
            }
        }
    return {"whole": _field(event_salt, [section], value, False)}


def _v1_public(record: AuditRecord) -> bool:
    if not public_actor(record.actor):
        return False
    return all(
        value is None or (isinstance(value, Mapping) and set(value) <= PUBLIC_KEYS)
        for value in (record.before, record.after)
    )


def export_event(record: AuditRecord) -> dict[str, object]:
    """The public form of one event (one line of the export)."""
    common: dict[str, object] = {"seq": record.seq, "v": record.version}
    if record.version == HASH_V2:
        if record.salt is None:
            raise ValueError(f"event {record.seq} is version 2 without a salt")
        return common | {
            "time": utc_text(record.time),
            "action": record.action,
            "object_type": record.object_type,
            "object_id": record.object_id,
            "actor": _field(record.salt, ["actor"], record.actor, public_actor(record.actor)),
            "before": _snapshot(record.salt, "before", record.before),
            "after": _snapshot(record.salt, "after", record.after),
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        }
    if _v1_public(record):
        return common | {
            "time": utc_text(record.time),
            "actor": record.actor,
            "action": record.action,
            "object_type": record.object_type,
            "object_id": record.object_id,
            "before": record.before,
            "after": record.after,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        }
    return common | {
        "withheld": BEFORE_TRANSPARENCY,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def export_line(record: AuditRecord) -> bytes:
    """One line of the export: the event's canonical JSON and a newline."""
    return canonical_json(export_event(record)) + b"\n"


# --- checking an export from outside ---------------------------------------------------------


def _hex64(where: str, value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise ExportError(f"{where} must be 64 lowercase hex digits")
    return value


def _text(event: Mapping[str, Any], name: str, where: str) -> str:
    value = event.get(name)
    if not isinstance(value, str):
        raise ExportError(f"{where}: {name} must be a string")
    return value


def _time(event: Mapping[str, Any], where: str) -> dt.datetime:
    text = _text(event, "time", where)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ExportError(f"{where}: time {text!r} is not an ISO time with a zone")
    return moment


def _digest_of(field: object, where: str) -> str:
    """The digest an exported field stands for: given, or computed from its value and salt."""
    if not isinstance(field, Mapping):
        raise ExportError(f"{where} must be an object with a digest or a value and salt")
    if "digest" in field:
        return _hex64(f"{where}.digest", field["digest"])
    if "value" in field and "salt" in field:
        salt = field["salt"]
        if not isinstance(salt, str) or len(salt) != 64 or not set(salt) <= _HEX:
            raise ExportError(f"{where}.salt must be 64 lowercase hex digits")
        try:
            return field_digest(bytes.fromhex(salt), field["value"])
        except (TypeError, ValueError) as err:
            raise ExportError(f"{where}.value cannot be hashed: {err}") from None
    raise ExportError(f"{where} has neither a digest nor a value and salt")


def _commitment(value: object, where: str) -> Commitment:
    if value is None:
        return None
    if isinstance(value, Mapping) and set(value) == {"map"} and isinstance(value["map"], Mapping):
        return {"map": {str(k): _digest_of(f, f"{where}.{k}") for k, f in value["map"].items()}}
    if isinstance(value, Mapping) and set(value) == {"whole"}:
        return {"whole": _digest_of(value["whole"], where)}
    raise ExportError(f"{where} must be null, {{'map': ...}} or {{'whole': ...}}")


def exported_hash(event: Mapping[str, Any], where: str) -> str | None:
    """The hash recomputed from an exported event's fields; None for a withheld event (its hash
    can only be taken as given). ExportError when the fields cannot be hashed."""
    version = event.get("v")
    if version == HASH_V1 and event.get("withheld") == BEFORE_TRANSPARENCY:
        return None
    common: dict[str, Any] = {
        "seq": event.get("seq"),
        "time": _time(event, where),
        "action": _text(event, "action", where),
        "object_type": _text(event, "object_type", where),
        "object_id": _text(event, "object_id", where),
        "prev_hash": _text(event, "prev_hash", where),
    }
    try:
        if version == HASH_V2 and not isinstance(version, bool):
            return committed_hash(
                **common,
                actor_digest=_digest_of(event.get("actor"), f"{where}: actor"),
                before=_commitment(event.get("before"), f"{where}: before"),
                after=_commitment(event.get("after"), f"{where}: after"),
            )
        if version == HASH_V1 and not isinstance(version, bool):
            return record_hash(
                **common,
                actor=_text(event, "actor", where),
                before=event.get("before"),
                after=event.get("after"),
            )
    except (TypeError, ValueError) as err:
        if isinstance(err, ExportError):
            raise
        raise ExportError(f"{where}: cannot be hashed: {err}") from None
    raise ExportError(f"{where}: unknown hash version {version!r}")


@dataclass(frozen=True)
class ExportSummary:
    """What an export checked out to."""

    events: int
    withheld: int
    #: Hash of the event at each count asked for (count 0: GENESIS_HASH).
    heads: dict[int, str]


def verify_export(events: Iterable[tuple[int, object]], *, wanted: Iterable[int]) -> ExportSummary:
    """Check an export streamed as (line number, decoded JSON) pairs: consecutive seq from 1,
    every recomputable hash matching its fields, every prev_hash naming the event before.
    Only events before the first version 2 event may be withheld (they were hashed before
    transparency). Keeps only the hashes at the counts in `wanted`. ExportError names the first
    problem."""
    wanted_counts = set(wanted)
    heads: dict[int, str] = {0: GENESIS_HASH} if 0 in wanted_counts else {}
    previous = GENESIS_HASH
    count = withheld = 0
    transparent = False
    for line, event in events:
        where = f"line {line}"
        if not isinstance(event, Mapping):
            raise ExportError(f"{where}: an event must be a JSON object")
        seq = event.get("seq")
        if seq != count + 1 or isinstance(seq, bool):
            raise ExportError(f"{where}: expected event {count + 1}, found seq {seq!r}")
        where = f"event {seq} (line {line})"
        claimed = _hex64(f"{where}: hash", event.get("hash"))
        prev_hash = _hex64(f"{where}: prev_hash", event.get("prev_hash"))
        if prev_hash != previous:
            raise ExportError(
                f"{where} does not link to event {count}: its prev_hash is not that event's hash"
            )
        recomputed = exported_hash(event, where)
        if recomputed is None:
            if transparent:
                # Only history from before version 2 may be withheld; hiding a later event
                # would hide what a rewrite changed.
                raise ExportError(f"{where} is withheld but follows version 2 events")
            withheld += 1
        elif recomputed != claimed:
            raise ExportError(f"{where}: its hash does not match its exported fields")
        transparent = transparent or event.get("v") == HASH_V2
        count += 1
        previous = claimed
        if count in wanted_counts:
            heads[count] = claimed
    return ExportSummary(events=count, withheld=withheld, heads=heads)


@dataclass(frozen=True)
class OutsideCheck:
    """The outcome of a successful outside check."""

    export: ExportSummary
    checkpoints: list[Checkpoint]


def check_against_checkpoints(
    events: Iterable[tuple[int, object]],
    checkpoints: Iterable[Checkpoint],
    trusted: Mapping[str, Ed25519PublicKey],
) -> OutsideCheck:
    """Everything `vpnreg audit verify --export` checks, in order: each checkpoint's signature,
    the checkpoints' own history (none rewritten), the export's chain, and that the export's
    event at each checkpoint's count has the checkpoint's head. ExportError or CheckpointError
    (both ValueError) names the first inconsistency."""
    given = list(checkpoints)
    for checkpoint in given:
        verify_checkpoint_signature(checkpoint, trusted)
    ordered = check_history(given)
    summary = verify_export(events, wanted={c.count for c in ordered})
    for checkpoint in ordered:
        if checkpoint.count > summary.events:
            raise CheckpointError(
                f"checkpoint {checkpoint.number} counts {checkpoint.count} events but the export "
                f"ends at event {summary.events}: events were cut off"
            )
        if summary.heads[checkpoint.count] != checkpoint.head:
            raise CheckpointError(
                f"checkpoint {checkpoint.number}: event {checkpoint.count} in the export does not "
                f"have the signed head hash: history was rewritten after it was checkpointed"
            )
    return OutsideCheck(export=summary, checkpoints=ordered)
