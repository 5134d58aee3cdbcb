"""Signed snapshots and deltas: every refusal has its own exception class."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given

from tests.core.feed.strategies import OTHER_SESSION, SESSION, entry_sets, fixed_key
from vpnreg.core.feed import (
    AllowlistEntry,
    BadSignature,
    EnforcementMode,
    EntryTable,
    Expired,
    FeedError,
    FeedHistory,
    Freshness,
    HashMismatch,
    HeldState,
    MalformedDocument,
    Mode,
    NotApplicable,
    Rollback,
    SessionMismatch,
    TruncatedDocument,
    UnknownKey,
    UnsignedDocument,
    VerifiedDelta,
    VerifiedSnapshot,
    apply_delta,
    check_not_older,
    dump_document,
    key_id,
    set_hash,
    sign_delta,
    sign_snapshot,
    sign_snapshot_bytes,
    verify_document,
)
from vpnreg.core.feed.document import expires_after, sign_history_snapshot

KEY = fixed_key("current")
OLD_KEY = fixed_key("previous")
STRANGER = fixed_key("stranger")
TRUSTED = {key_id(k.public_key()): k.public_key() for k in (KEY, OLD_KEY)}
CREATED = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
EXPIRES = CREATED + dt.timedelta(days=1)
NOW = CREATED + dt.timedelta(hours=1)
MODE = EnforcementMode(Mode.ENFORCE, {"wireguard": Mode.DRY_RUN})


def entry(prefix: str, reg: int, peers: tuple[str, ...] = ()) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=ipaddress.ip_network(prefix),
        peers=tuple(ipaddress.ip_network(p) for p in peers),
        registration_id=reg,
        valid_until=dt.datetime(2027, 1, 31, 19, tzinfo=dt.UTC),
    )


BEFORE = [entry("192.0.2.0/24", 1), entry("2001:db8::/32", 2, ("198.51.100.0/24",))]
NEW = entry("203.0.113.0/24", 3)
AFTER = [BEFORE[1], NEW]


def snapshot_doc(key: Any = KEY, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "session_id": SESSION,
        "serial": 5,
        "entries": BEFORE,
        "mode": MODE,
        "created": CREATED,
        "expires": EXPIRES,
        "private_key": key,
    }
    return sign_snapshot(**{**args, **kw})


def delta_doc(key: Any = KEY, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "session_id": SESSION,
        "serial": 6,
        "previous_serial": 5,
        "added": [NEW],
        "removed": [BEFORE[0]],
        "set_hash": set_hash(AFTER),
        "mode": MODE,
        "created": CREATED + dt.timedelta(minutes=1),
        "expires": EXPIRES + dt.timedelta(minutes=1),
        "private_key": key,
    }
    return sign_delta(**{**args, **kw})


def verify(raw: bytes, held: HeldState | None = None, now: dt.datetime = NOW) -> Any:
    return verify_document(raw, trusted=TRUSTED, now=now, held=held)


def test_snapshot_round_trip() -> None:
    result = verify(dump_document(snapshot_doc()))
    assert isinstance(result, VerifiedSnapshot)
    assert result.entries == EntryTable.from_entries(BEFORE)
    assert (result.session_id, result.serial, result.previous_serial) == (SESSION, 5, 0)
    assert result.mode == MODE
    assert result.created == CREATED
    assert result.expires == EXPIRES
    assert result.set_hash == set_hash(BEFORE)


def test_delta_applies_to_the_snapshot() -> None:
    snap = verify(dump_document(snapshot_doc()))
    delta = verify(dump_document(delta_doc()), held=snap.held())
    assert isinstance(delta, VerifiedDelta)
    state = apply_delta(snap, delta)
    assert state.entries == EntryTable.from_entries(AFTER)
    assert state.serial == 6
    assert state.set_hash == set_hash(AFTER)
    assert state.entries.to_entries() == sorted(AFTER, key=AllowlistEntry.encode)


@pytest.mark.parametrize("signer", [KEY, OLD_KEY], ids=["current-key", "previous-key"])
def test_key_rotation_either_trusted_key_verifies(signer: Any) -> None:
    doc = snapshot_doc(key=signer)
    assert doc["key_id"] == key_id(signer.public_key())
    assert verify(dump_document(doc)).key_id == doc["key_id"]
    assert verify(dump_document(delta_doc(key=signer))).key_id == doc["key_id"]


def test_key_id_is_sha256_prefix_of_raw_public_key() -> None:
    raw = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert key_id(KEY.public_key()) == hashlib.sha256(raw).hexdigest()[:16]


Mutation = Callable[[dict[str, Any]], Any]


def _set(field: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        doc[field] = value
        return doc

    return mutate


def _drop(field: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        del doc[field]
        return doc

    return mutate


def _entry_field(list_name: str, field: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        doc[list_name][0][field] = value
        return doc

    return mutate


def _raw(transform: Callable[[bytes], bytes]) -> Mutation:
    def mutate(doc: dict[str, Any]) -> bytes:
        return transform(dump_document(doc))

    return mutate


def _other_signature(doc: dict[str, Any]) -> dict[str, Any]:
    doc["signature"] = snapshot_doc(serial=99)["signature"]
    return doc


def _other_trusted_key_id(doc: dict[str, Any]) -> dict[str, Any]:
    doc["key_id"] = key_id(OLD_KEY.public_key())
    return doc


def _bump_time(field: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        doc[field] = doc[field].replace("T09", "T10")
        return doc

    return mutate


SNAPSHOT_CASES = [
    pytest.param(_raw(lambda r: b"{not json}"), MalformedDocument, id="not-json"),
    pytest.param(_raw(lambda r: b"\xff\xfe{}"), MalformedDocument, id="not-utf8"),
    pytest.param(_raw(lambda r: b"[1, 2]"), MalformedDocument, id="json-array"),
    pytest.param(_raw(lambda r: r + b"x"), MalformedDocument, id="trailing-garbage"),
    pytest.param(_raw(lambda r: r[: len(r) // 2]), TruncatedDocument, id="truncated-half"),
    pytest.param(_raw(lambda r: r[:-1]), TruncatedDocument, id="truncated-last-byte"),
    pytest.param(_raw(lambda r: b""), TruncatedDocument, id="empty-body"),
    pytest.param(_set("type", "full"), MalformedDocument, id="unknown-type"),
    pytest.param(_drop("signature"), UnsignedDocument, id="no-signature"),
    pytest.param(_drop("key_id"), UnsignedDocument, id="no-key-id"),
    pytest.param(_set("signature", ""), UnsignedDocument, id="empty-signature"),
    pytest.param(_drop("expires"), MalformedDocument, id="missing-field"),
    pytest.param(_set("note", "hi"), MalformedDocument, id="extra-field"),
    pytest.param(_set("serial", "5"), MalformedDocument, id="serial-as-text"),
    pytest.param(_set("serial", 0), MalformedDocument, id="serial-zero"),
    pytest.param(_set("previous_serial", 4), MalformedDocument, id="snapshot-previous-serial"),
    pytest.param(_set("session_id", "not-hex"), MalformedDocument, id="bad-session-id"),
    pytest.param(_set("set_hash", "AB" * 32), MalformedDocument, id="uppercase-set-hash"),
    pytest.param(_set("created", "2026-01-15 09:00:00"), MalformedDocument, id="naive-time"),
    pytest.param(_set("expires", "2026-01-15T08:00:00Z"), MalformedDocument, id="expires-first"),
    pytest.param(_set("entries", {}), MalformedDocument, id="entries-not-list"),
    pytest.param(
        _entry_field("entries", "prefix", "192.0.2.1/24"), MalformedDocument, id="bad-entry"
    ),
    pytest.param(_set("key_id", 7), MalformedDocument, id="key-id-not-text"),
    pytest.param(_set("key_id", "0000000000000000"), UnknownKey, id="unknown-key-id"),
    pytest.param(_other_signature, BadSignature, id="wrong-signature"),
    pytest.param(_set("signature", "***"), BadSignature, id="signature-not-base64"),
    pytest.param(_other_trusted_key_id, BadSignature, id="other-trusted-key-id"),
    pytest.param(_set("serial", 6), BadSignature, id="tampered-serial"),
    pytest.param(_set("session_id", OTHER_SESSION), BadSignature, id="tampered-session"),
    pytest.param(_set("set_hash", set_hash(AFTER)), BadSignature, id="tampered-set-hash"),
    pytest.param(
        _set("mode", {"default": "dry-run", "per_protocol": {}}), BadSignature, id="tampered-mode"
    ),
    pytest.param(_bump_time("expires"), BadSignature, id="tampered-expires"),
    pytest.param(_bump_time("created"), BadSignature, id="tampered-created"),
    pytest.param(_entry_field("entries", "registration_id", 77), HashMismatch, id="tampered-entry"),
    pytest.param(
        _entry_field("entries", "peers", ["203.0.113.0/24"]),
        HashMismatch,
        id="tampered-entry-peers",
    ),
]


@pytest.mark.parametrize(("mutate", "error"), SNAPSHOT_CASES)
def test_snapshot_refusals(mutate: Mutation, error: type[FeedError]) -> None:
    doc = mutate(copy.deepcopy(snapshot_doc()))
    raw = doc if isinstance(doc, bytes) else dump_document(doc)
    with pytest.raises(FeedError) as info:
        verify(raw)
    assert type(info.value) is error, info.value
    assert "\n" not in str(info.value)
    assert str(info.value)


DELTA_CASES = [
    pytest.param(_set("previous_serial", 0), MalformedDocument, id="previous-serial-zero"),
    pytest.param(_set("previous_serial", 6), MalformedDocument, id="previous-not-below"),
    pytest.param(_set("added", [BEFORE[0].to_json()]), MalformedDocument, id="add-and-remove"),
    pytest.param(_drop("removed"), MalformedDocument, id="missing-removed"),
    pytest.param(_entry_field("added", "registration_id", 77), BadSignature, id="tampered-added"),
    pytest.param(_set("removed", []), BadSignature, id="tampered-removed"),
    pytest.param(_set("previous_serial", 4), BadSignature, id="tampered-previous-serial"),
    pytest.param(_drop("signature"), UnsignedDocument, id="unsigned"),
    pytest.param(_raw(lambda r: r[:100]), TruncatedDocument, id="truncated"),
]


@pytest.mark.parametrize(("mutate", "error"), DELTA_CASES)
def test_delta_refusals(mutate: Mutation, error: type[FeedError]) -> None:
    doc = mutate(copy.deepcopy(delta_doc()))
    raw = doc if isinstance(doc, bytes) else dump_document(doc)
    with pytest.raises(FeedError) as info:
        verify(raw)
    assert type(info.value) is error, info.value


def test_every_cut_of_a_document_is_truncated() -> None:
    raw = dump_document(delta_doc())
    for cut in range(len(raw)):
        with pytest.raises(TruncatedDocument):
            verify(raw[:cut])


def test_unknown_key() -> None:
    with pytest.raises(UnknownKey):
        verify(dump_document(snapshot_doc(key=STRANGER)))


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        pytest.param(EXPIRES - dt.timedelta(microseconds=1), True, id="just-before"),
        pytest.param(EXPIRES, False, id="at-expiry"),
        pytest.param(EXPIRES + dt.timedelta(days=3), False, id="long-after"),
    ],
)
def test_expiry(now: dt.datetime, ok: bool) -> None:
    raw = dump_document(snapshot_doc())
    if ok:
        assert verify(raw, now=now).serial == 5
    else:
        with pytest.raises(Expired):
            verify(raw, now=now)


HELD = HeldState(SESSION, 5, CREATED, set_hash(BEFORE))


@pytest.mark.parametrize(
    ("kw", "outcome"),
    [
        pytest.param({}, Freshness.SAME, id="same"),
        pytest.param({"serial": 6, "entries": AFTER}, Freshness.NEWER, id="next-serial"),
        pytest.param({"serial": 4}, Rollback, id="lower-serial"),
        pytest.param({"entries": AFTER}, Rollback, id="same-serial-other-set"),
        pytest.param(
            {"created": CREATED - dt.timedelta(seconds=1), "serial": 9},
            Rollback,
            id="earlier-created-same-session",
        ),
        pytest.param(
            {"created": CREATED - dt.timedelta(seconds=1), "session_id": OTHER_SESSION},
            Rollback,
            id="earlier-created-other-session",
        ),
        pytest.param(
            {"session_id": OTHER_SESSION, "serial": 1, "created": CREATED + dt.timedelta(hours=1)},
            Freshness.NEWER,
            id="reset-new-session",
        ),
    ],
)
def test_check_not_older(kw: dict[str, Any], outcome: Any) -> None:
    raw = dump_document(snapshot_doc(**kw))
    doc = verify(raw)
    if isinstance(outcome, Freshness):
        assert check_not_older(HELD, doc) is outcome
        assert verify(raw, held=HELD).serial == doc.serial
    else:
        with pytest.raises(outcome):
            check_not_older(HELD, doc)
        with pytest.raises(outcome):
            verify(raw, held=HELD)


def test_check_not_older_without_held_state() -> None:
    assert check_not_older(None, verify(dump_document(snapshot_doc()))) is Freshness.NEWER


def test_held_state_round_trips_through_json() -> None:
    assert HeldState.from_json(HELD.to_json()) == HELD


def test_delta_with_wrong_set_hash_fails_when_applied() -> None:
    snap = verify(dump_document(snapshot_doc()))
    delta = verify(dump_document(delta_doc(set_hash=set_hash(BEFORE))))
    with pytest.raises(HashMismatch):
        apply_delta(snap, delta)


def test_delta_for_another_session() -> None:
    snap = verify(dump_document(snapshot_doc(session_id=OTHER_SESSION)))
    with pytest.raises(SessionMismatch):
        apply_delta(snap, verify(dump_document(delta_doc())))


def test_delta_from_another_serial() -> None:
    snap = verify(dump_document(snapshot_doc(serial=4)))
    with pytest.raises(NotApplicable):
        apply_delta(snap, verify(dump_document(delta_doc())))


def test_delta_removing_what_is_not_held() -> None:
    snap = verify(dump_document(snapshot_doc(entries=BEFORE[1:])))
    with pytest.raises(NotApplicable):
        apply_delta(snap, verify(dump_document(delta_doc())))


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"session_id": "ABC"}, id="bad-session"),
        pytest.param({"expires": CREATED}, id="expires-not-after-created"),
        pytest.param({"serial": 0}, id="serial-zero"),
        pytest.param({"created": dt.datetime(2026, 1, 15)}, id="naive-created"),
    ],
)
def test_signing_refuses_what_verification_would_refuse(kw: dict[str, Any]) -> None:
    with pytest.raises((ValueError, MalformedDocument)):
        snapshot_doc(**kw)


@given(entry_sets)
def test_snapshot_bytes_equal_the_snapshot_document(items: list[AllowlistEntry]) -> None:
    args: dict[str, Any] = {
        "session_id": SESSION,
        "serial": 3,
        "entries": items,
        "mode": MODE,
        "created": CREATED,
        "expires": EXPIRES,
        "private_key": KEY,
    }
    raw = sign_snapshot_bytes(**args)
    assert json.loads(raw) == sign_snapshot(**args)
    assert verify(raw).entries == EntryTable.from_entries(items)


def test_a_history_snapshot_signs_as_the_snapshot_of_its_fields() -> None:
    history = FeedHistory.new(
        session_id=SESSION, now=CREATED, entries=EntryTable.from_entries(BEFORE), mode=MODE
    )
    snap = history.snapshot()
    raw = sign_history_snapshot(snap, expires=EXPIRES, private_key=KEY)
    assert raw == sign_snapshot_bytes(
        session_id=SESSION, serial=snap.serial, entries=BEFORE, mode=MODE, created=CREATED,
        expires=EXPIRES, private_key=KEY,
    )  # fmt: skip
    result = verify(raw)
    assert isinstance(result, VerifiedSnapshot)
    assert (result.serial, result.set_hash, result.expires) == (1, snap.set_hash, EXPIRES)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(NOW, NOW + dt.timedelta(days=1), id="clock-after-the-state"),
        pytest.param(
            CREATED - dt.timedelta(hours=3), CREATED + dt.timedelta(days=1), id="clock-behind"
        ),
    ],
)
def test_expiry_counts_from_the_later_of_now_and_the_state_time(
    now: dt.datetime, expected: dt.datetime
) -> None:
    assert expires_after(CREATED, now=now, validity=dt.timedelta(days=1)) == expected
