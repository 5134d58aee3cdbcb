"""Audit transparency in the pure core: hash version 2, the public export form, signed
checkpoints and the outside check (ADR 0008)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vpnreg.core.audit import (
    GENESIS_HASH,
    HASH_V1,
    HASH_V2,
    SALT_BYTES,
    AuditRecord,
    next_record,
    record_hash,
    verify_chain,
)
from vpnreg.core.audit_checkpoint import (
    NO_PREVIOUS,
    Checkpoint,
    CheckpointError,
    check_history,
    parse_checkpoint,
    sign_checkpoint,
    verify_signature,
)
from vpnreg.core.audit_export import (
    BEFORE_TRANSPARENCY,
    ExportError,
    check_against_checkpoints,
    export_event,
    export_line,
    verify_export,
)
from vpnreg.core.feed import key_id

T0 = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TRUSTED: dict[str, Ed25519PublicKey] = {key_id(KEY.public_key()): KEY.public_key()}
PERSON = {
    "id": 7,
    "name": "Rabia Tarbela",
    "national_id_last4": "7125",
    "category": "freelancer",
    "state": "submitted",
}


def _salt(n: int) -> bytes:
    return bytes([n]) * SALT_BYTES


def _chain(versions: list[int]) -> list[AuditRecord]:
    """A chain whose i-th event has hash version versions[i]; all carry personal data."""
    records: list[AuditRecord] = []
    for i, version in enumerate(versions):
        records.append(
            next_record(
                records[-1] if records else None,
                time=T0 + dt.timedelta(minutes=i),
                actor="ali" if i % 2 else "system",
                action="update",
                object_type="organisation",
                object_id=str(PERSON["id"]),
                before=None if i == 0 else {**PERSON, "state": "draft"},
                after={**PERSON, "version": i},
                salt=_salt(i) if version == HASH_V2 else None,
            )
        )
    return records


def _lines(records: list[AuditRecord]) -> list[tuple[int, object]]:
    return [(n, json.loads(export_line(r))) for n, r in enumerate(records, start=1)]


def _checkpoint(
    records: list[AuditRecord], count: int, number: int = 1, **kw: object
) -> Checkpoint:
    fields: dict[str, object] = {
        "number": number,
        "count": count,
        "head": records[count - 1].hash if count else GENESIS_HASH,
        "time": T0 + dt.timedelta(hours=number),
        "previous": NO_PREVIOUS,
        "private_key": KEY,
    }
    fields.update(kw)
    return sign_checkpoint(**fields)  # type: ignore[arg-type]


# --- hash version 2 -------------------------------------------------------------------------


def test_a_mixed_chain_of_both_versions_verifies() -> None:
    records = _chain([HASH_V1, HASH_V1, HASH_V2, HASH_V2])
    assert [r.version for r in records] == [1, 1, 2, 2]
    assert records[2].salt == _salt(2)
    assert verify_chain(records) is None


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        pytest.param(lambda r: dataclasses.replace(r, salt=_salt(99)), "modified", id="salt"),
        pytest.param(lambda r: dataclasses.replace(r, actor="mallory"), "modified", id="actor"),
        pytest.param(
            lambda r: dataclasses.replace(r, after={**PERSON, "version": 0}), "modified", id="after"
        ),
        pytest.param(lambda r: dataclasses.replace(r, salt=None), "malformed", id="salt-removed"),
        pytest.param(lambda r: dataclasses.replace(r, version=1), "malformed", id="to-version-1"),
        pytest.param(
            lambda r: dataclasses.replace(r, version=3), "malformed", id="unknown-version"
        ),
        pytest.param(lambda r: dataclasses.replace(r, salt=b"short"), "malformed", id="short-salt"),
    ],
)
def test_tampering_with_a_version_2_event_or_its_salt_is_found(
    change: Callable[[AuditRecord], AuditRecord], kind: str
) -> None:
    records = _chain([HASH_V1, HASH_V2, HASH_V2, HASH_V2])
    records[2] = change(records[2])
    problem = verify_chain(records)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, kind)


def test_a_salt_on_a_version_1_event_is_refused() -> None:
    records = _chain([HASH_V1, HASH_V1])
    records[1] = dataclasses.replace(records[1], salt=_salt(1))
    problem = verify_chain(records)
    assert problem is not None
    assert (problem.seq, problem.kind) == (2, "malformed")


def test_version_2_hash_depends_on_the_salt_and_differs_from_version_1() -> None:
    fields: dict[str, object] = {
        "seq": 1,
        "time": T0,
        "actor": "ali",
        "action": "a",
        "object_type": "o",
        "object_id": "1",
        "before": None,
        "after": PERSON,
        "prev_hash": GENESIS_HASH,
    }
    v1 = record_hash(**fields)  # type: ignore[arg-type]
    v2a = record_hash(**fields, version=HASH_V2, salt=_salt(1))  # type: ignore[arg-type]
    v2b = record_hash(**fields, version=HASH_V2, salt=_salt(2))  # type: ignore[arg-type]
    assert len({v1, v2a, v2b}) == 3


# --- the export form ------------------------------------------------------------------------


def _leaves(value: object, key: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, k)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v, key)]
    return [(key, value)]


def test_the_export_shows_public_fields_and_hides_personal_ones() -> None:
    records = _chain([HASH_V2, HASH_V2])
    event = json.loads(export_line(records[1]))
    after = event["after"]["map"]
    assert after["state"]["value"] == "submitted"
    assert after["category"]["value"] == "freelancer"
    assert set(after["name"]) == {"digest"}
    assert set(after["national_id_last4"]) == {"digest"}
    assert set(event["actor"]) == {"digest"}  # a person
    assert json.loads(export_line(records[0]))["actor"]["value"] == "system"
    shown = [v for k, v in _leaves(event) if k not in {"salt", "digest", "hash", "prev_hash"}]
    for secret in ("Rabia Tarbela", "7125", "ali"):
        assert secret not in shown
    assert "salt" not in json.dumps(event["after"]["map"]["name"])


def test_every_exported_hash_recomputes_and_a_changed_field_does_not() -> None:
    records = _chain([HASH_V1, HASH_V2, HASH_V2, HASH_V2])
    lines = _lines(records)
    summary = verify_export(lines, wanted={4})
    assert (summary.events, summary.withheld, summary.heads) == (4, 1, {4: records[3].hash})
    event = lines[2][1]
    assert isinstance(event, dict)
    event["after"]["map"]["state"]["value"] = "approved"
    with pytest.raises(ExportError, match=r"event 3 .*does not match its exported fields"):
        verify_export(lines, wanted=())


def test_a_version_1_event_is_shown_only_without_personal_fields() -> None:
    personal = _chain([HASH_V1])[0]
    assert export_event(personal) == {
        "seq": 1,
        "v": 1,
        "withheld": BEFORE_TRANSPARENCY,
        "prev_hash": GENESIS_HASH,
        "hash": personal.hash,
    }
    public = next_record(
        None,
        time=T0,
        actor="system",
        action="activate",
        object_type="application",
        object_id="3",
        before={"state": "approved", "version": 4},
        after={"state": "active", "version": 5},
    )
    shown = export_event(public)
    assert shown["after"] == {"state": "active", "version": 5}
    assert verify_export([(1, json.loads(export_line(public)))], wanted=()).withheld == 0


def _withhold(event: dict[str, object]) -> None:
    """Pass a version 2 event off as one from before transparency, hiding its fields."""
    kept = {"seq": event["seq"], "prev_hash": event["prev_hash"], "hash": event["hash"]}
    event.clear()
    event.update(kept, v=HASH_V1, withheld=BEFORE_TRANSPARENCY)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        pytest.param(lambda ls: ls.pop(1), "expected event 2", id="event-removed"),
        pytest.param(
            lambda ls: ls[1][1].update(prev_hash="a" * 64), "does not link", id="bad-link"
        ),
        pytest.param(lambda ls: ls[2][1].update(hash="b" * 64), "does not match", id="bad-hash"),
        pytest.param(lambda ls: ls[2][1].update(v=7), "unknown hash version", id="bad-version"),
        pytest.param(lambda ls: ls[2][1].update(time="noon"), "not an ISO time", id="bad-time"),
        pytest.param(lambda ls: ls[2][1].pop("actor"), "actor must be an object", id="no-actor"),
        pytest.param(
            lambda ls: _withhold(ls[2][1]), "withheld but follows version 2", id="hidden-v2"
        ),
    ],
)
def test_an_inconsistent_export_is_named(
    break_it: Callable[[list[tuple[int, dict[str, object]]]], object], message: str
) -> None:
    lines = _lines(_chain([HASH_V2, HASH_V2, HASH_V2]))
    break_it(lines)  # type: ignore[arg-type]
    with pytest.raises(ExportError, match=message):
        verify_export(lines, wanted=())


# --- checkpoints ----------------------------------------------------------------------------


def test_a_checkpoint_round_trips_through_json_and_verifies() -> None:
    records = _chain([HASH_V2] * 3)
    checkpoint = _checkpoint(records, 3)
    parsed = parse_checkpoint(json.loads(json.dumps(checkpoint.to_json())))
    assert parsed == checkpoint
    verify_signature(parsed, TRUSTED)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"count": 2}, "does not verify", id="count"),
        pytest.param({"head": "c" * 64}, "does not verify", id="head"),
        pytest.param({"time": T0}, "does not verify", id="time"),
        pytest.param({"key_id": "0" * 16}, "untrusted key", id="key"),
        pytest.param({"signature": "not base64!"}, "not valid base64", id="signature"),
    ],
)
def test_a_changed_checkpoint_fails_its_signature(change: dict[str, object], message: str) -> None:
    checkpoint = dataclasses.replace(_checkpoint(_chain([HASH_V2] * 3), 3), **change)
    with pytest.raises(CheckpointError, match=message):
        verify_signature(checkpoint, TRUSTED)


def test_checkpoints_are_chained_and_a_rewritten_one_is_found() -> None:
    records = _chain([HASH_V2] * 5)
    first = _checkpoint(records, 2)
    second = _checkpoint(records, 5, number=2, previous=first.digest)
    assert check_history([second, first, second]) == [first, second]
    forged_first = _checkpoint(records, 3)  # re-signed with the key: a valid signature
    with pytest.raises(CheckpointError, match="checkpoint 1 was rewritten"):
        check_history([first, second, forged_first])
    with pytest.raises(CheckpointError, match="does not name checkpoint 1's digest"):
        check_history([forged_first, second])
    shrunk = _checkpoint(records, 1, number=2, previous=first.digest)
    with pytest.raises(CheckpointError, match="fewer than checkpoint 1"):
        check_history([first, shrunk])
    earlier = _checkpoint(records, 5, number=2, previous=first.digest, time=first.time)
    with pytest.raises(CheckpointError, match="not later than"):
        check_history([first, earlier])


def test_the_outside_check_passes_a_consistent_export_and_catches_a_rewrite() -> None:
    records = _chain([HASH_V1, HASH_V2, HASH_V2, HASH_V2])
    checkpoint = _checkpoint(records, 3)
    outcome = check_against_checkpoints(_lines(records), [checkpoint], TRUSTED)
    assert (outcome.export.events, outcome.checkpoints) == (4, [checkpoint])
    # Rewrite event 2 and recompute every later hash: the export is self-consistent again...
    rewritten = records[:1]
    for r in records[1:]:
        after = {**PERSON, "state": "rejected"} if r.seq == 2 else r.after
        rewritten.append(
            next_record(
                rewritten[-1],
                time=r.time,
                actor=r.actor,
                action=r.action,
                object_type=r.object_type,
                object_id=r.object_id,
                before=r.before,
                after=after,
                salt=r.salt,
            )
        )
    assert verify_chain(rewritten) is None
    assert verify_export(_lines(rewritten), wanted=()).events == 4
    # ...but no longer passes through the signed head.
    with pytest.raises(CheckpointError, match="history was rewritten"):
        check_against_checkpoints(_lines(rewritten), [checkpoint], TRUSTED)
    with pytest.raises(CheckpointError, match="cut off"):
        check_against_checkpoints(_lines(records[:2]), [checkpoint], TRUSTED)
