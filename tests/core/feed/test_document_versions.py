"""Document versions (ADR 0006): v2 documents, v1 documents read for one release, an unknown
version refused with its own error, and a delta of another version than the set held."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pytest

from tests.core.feed.strategies import SESSION, fixed_key
from vpnreg.core.feed import (
    AllowlistEntry,
    BadSignature,
    EnforcementMode,
    EntryTable,
    HashMismatch,
    MalformedDocument,
    NotApplicable,
    UnsupportedVersion,
    VerifiedDelta,
    VerifiedSnapshot,
    VersionMismatch,
    VpnProtocol,
    apply_delta,
    dump_document,
    key_id,
    sign_delta,
    sign_snapshot,
    verify_document,
)

KEY = fixed_key("current")
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}
CREATED = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
EXPIRES = CREATED + dt.timedelta(days=1)
NOW = CREATED + dt.timedelta(hours=1)
MODE = EnforcementMode.enforce_all()

CGNAT = AllowlistEntry(
    prefix=ipaddress.ip_network("198.51.100.7/32"),
    peers=(),
    registration_id=5,
    valid_until=dt.datetime(2026, 1, 15, 21, 30, 5, tzinfo=dt.UTC),
    ports=(1024, 2047),
    protocols=frozenset({VpnProtocol.WIREGUARD}),
)
V1_JSON = [
    {"prefix": "192.0.2.0/24", "peers": [], "registration_id": 1, "valid_until": "2027-01-31"},
    {
        "prefix": "2001:db8::/32",
        "peers": ["198.51.100.0/24"],
        "registration_id": 2,
        "valid_until": "2026-12-31",
    },
]
V1_NEW = {
    "prefix": "203.0.113.0/24",
    "peers": [],
    "registration_id": 3,
    "valid_until": "2026-06-30",
}


def v1(objs: list[dict[str, Any]]) -> EntryTable:
    return EntryTable.from_json_list(objs, version=1)


def snapshot(entries: EntryTable | list[AllowlistEntry], serial: int = 5) -> dict[str, Any]:
    return sign_snapshot(
        session_id=SESSION,
        serial=serial,
        entries=entries,
        mode=MODE,
        created=CREATED,
        expires=EXPIRES,
        private_key=KEY,
    )


def delta(added: EntryTable, removed: EntryTable, after: EntryTable) -> dict[str, Any]:
    return sign_delta(
        session_id=SESSION,
        serial=6,
        previous_serial=5,
        added=added,
        removed=removed,
        set_hash=after.set_hash(),
        mode=MODE,
        created=CREATED + dt.timedelta(minutes=1),
        expires=EXPIRES,
        private_key=KEY,
    )


def verify(doc: dict[str, Any]) -> Any:
    return verify_document(dump_document(doc), trusted=TRUSTED, now=NOW)


def test_a_v2_document_says_its_version_and_carries_the_new_fields() -> None:
    doc = snapshot([CGNAT])
    assert doc["version"] == 2
    assert doc["entries"] == [
        {
            "prefix": "198.51.100.7/32",
            "peers": [],
            "registration_id": 5,
            "valid_until": "2026-01-15T21:30:05Z",
            "ports": [1024, 2047],
            "protocols": ["wireguard"],
        }
    ]
    result = verify(doc)
    assert isinstance(result, VerifiedSnapshot)
    assert result.version == 2
    assert result.entries.to_entries() == [CGNAT]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("valid_until", "2026-01-15T21:30:06Z", id="valid-until-one-second-later"),
        pytest.param("ports", [1024, 2048], id="port-range-wider"),
        pytest.param("ports", [0, 65535], id="port-range-any"),
        pytest.param("protocols", ["openvpn", "wireguard"], id="protocol-added"),
        pytest.param("protocols", [], id="protocols-any"),
    ],
)
def test_a_tampered_v2_field_is_refused(field: str, value: Any) -> None:
    snap = snapshot([CGNAT])
    snap["entries"][0][field] = value
    with pytest.raises(HashMismatch):
        verify(snap)
    # in a delta the changes digest covers the field: the signature no longer verifies
    added = EntryTable.from_entries([CGNAT])
    doc = delta(added, EntryTable.empty(), added)
    doc["added"][0][field] = value
    with pytest.raises(BadSignature):
        verify(doc)


@pytest.mark.parametrize("version", [3, 99])
def test_an_unknown_version_is_refused_with_its_own_error(version: int) -> None:
    doc = snapshot([CGNAT])
    doc["version"] = version
    doc["entries"] = [{"something": "new"}]
    with pytest.raises(UnsupportedVersion) as caught:
        verify(doc)
    assert str(caught.value) == (
        f"feed document version {version} is not supported (this client reads 1 and 2)"
    )


@pytest.mark.parametrize(
    "value",
    [pytest.param(1, id="one"), pytest.param("2", id="text"), pytest.param(True, id="bool")],
)
def test_a_malformed_version_field_is_refused(value: Any) -> None:
    doc = snapshot([CGNAT])
    doc["version"] = value
    with pytest.raises(MalformedDocument):
        verify(doc)


def test_dropping_the_version_field_does_not_make_a_v2_document_v1() -> None:
    # the v1 signing domain keeps the v2 signature from verifying, whatever the entries say
    doc = snapshot([CGNAT])
    del doc["version"]
    with pytest.raises(BadSignature):
        verify(doc)
    doc["entries"] = [V1_JSON[0]]
    with pytest.raises(BadSignature):
        verify(doc)


def test_v1_snapshot_and_delta_still_verify_and_apply() -> None:
    before = v1(V1_JSON)
    after = v1([V1_JSON[1], V1_NEW])
    snap_doc = snapshot(before)
    assert "version" not in snap_doc
    snap = verify(snap_doc)
    assert isinstance(snap, VerifiedSnapshot)
    assert snap.version == 1
    step = verify(delta(v1([V1_NEW]), v1([V1_JSON[0]]), after))
    assert isinstance(step, VerifiedDelta)
    state = apply_delta(snap.state(), step)
    assert state.version == 1
    assert state.entries == after
    enforced = {e.registration_id: e for e in state.entries.to_entries()}
    assert enforced[3].valid_until == dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
    assert enforced[3].ports == (0, 65535)
    assert enforced[3].protocols == frozenset()


@pytest.mark.parametrize(("held", "offered"), [(1, 2), (2, 1)])
def test_a_delta_of_another_version_than_held_is_not_applicable(held: int, offered: int) -> None:
    tables = {1: v1(V1_JSON[:1]), 2: EntryTable.from_entries([CGNAT])}
    empty = EntryTable.empty(offered)
    state = verify(snapshot(tables[held])).state()
    step = verify(delta(empty, empty, tables[held]))
    with pytest.raises(VersionMismatch) as caught:
        apply_delta(state, step)
    assert isinstance(caught.value, NotApplicable)
    assert "a snapshot is needed" in str(caught.value)


def test_v1_entries_are_malformed_in_a_v2_document_and_back() -> None:
    doc = snapshot([CGNAT])
    doc["entries"] = [V1_JSON[0]]
    with pytest.raises(MalformedDocument):
        verify(doc)
    v1_doc = snapshot(v1(V1_JSON))
    v1_doc["entries"] = [CGNAT.to_json()]
    with pytest.raises(MalformedDocument):
        verify(v1_doc)
