"""The committed test vectors hold for this implementation: tests/vectors/feed-v2.json (entry
version 2, ADR 0006) and tests/vectors/feed.json (version 1, ADR 0001), the latter read through
the client's v1 reading path."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vpnreg.core.feed import (
    AllowlistEntry,
    EnforcementMode,
    EntryTable,
    VerifiedDelta,
    VerifiedSnapshot,
    apply_delta,
    dump_document,
    encode_network,
    key_id,
    set_hash,
    v1_valid_until,
    verify_document,
)
from vpnreg.core.feed.entry_v1 import parse_v1

_DIR = Path(__file__).resolve().parents[2] / "vectors"
VECTORS: dict[int, dict[str, Any]] = {
    1: json.loads((_DIR / "feed.json").read_text()),
    2: json.loads((_DIR / "feed-v2.json").read_text()),
}


def _cases(part: str) -> list[Any]:
    return [
        pytest.param(v, c, id=f"v{v}-{i}") for v in (1, 2) for i, c in enumerate(VECTORS[v][part])
    ]


@pytest.mark.parametrize(("version", "case"), _cases("networks"))
def test_network_vectors(version: int, case: dict[str, str]) -> None:
    assert encode_network(ipaddress.ip_network(case["network"])).hex() == case["encoding"]


@pytest.mark.parametrize(("version", "case"), _cases("entries"))
def test_entry_vectors(version: int, case: dict[str, Any]) -> None:
    table = EntryTable.from_json_list([case["json"]], version=version)
    assert table.encoded().hex() == case["encoding"]
    assert table.to_json_list() == [case["json"]]
    if version == 2:
        assert AllowlistEntry.from_json(case["json"]).encode().hex() == case["encoding"]
    else:
        assert parse_v1(case["json"])[0].hex() == case["encoding"]


@pytest.mark.parametrize(("version", "case"), _cases("sets"))
def test_set_hash_vectors(version: int, case: dict[str, Any]) -> None:
    objs = [VECTORS[version]["entries"][i]["json"] for i in case["members"]]
    assert EntryTable.from_json_list(objs, version=version).set_hash() == case["set_hash"]
    if version == 2:
        assert set_hash(AllowlistEntry.from_json(o) for o in objs) == case["set_hash"]


def test_empty_set_hash_is_sha256_of_nothing() -> None:
    for version in (1, 2):
        empty = next(c for c in VECTORS[version]["sets"] if c["name"] == "empty")
        assert (
            empty["set_hash"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )


@pytest.mark.parametrize(("version", "case"), _cases("modes"))
def test_mode_vectors(version: int, case: dict[str, Any]) -> None:
    assert EnforcementMode.from_json(case["json"]).encode().hex() == case["encoding"]


@pytest.mark.parametrize("version", [1, 2])
def test_signed_document_vectors(version: int) -> None:
    signing = VECTORS[version]["signing"]
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(signing["private_key_seed"]))
    public = private.public_key()
    assert key_id(public) == signing["key_id"]
    trusted = {signing["key_id"]: public}
    now = dt.datetime.fromisoformat(signing["now"])
    snap = verify_document(dump_document(signing["snapshot"]["document"]), trusted=trusted, now=now)
    delta = verify_document(dump_document(signing["delta"]["document"]), trusted=trusted, now=now)
    assert isinstance(snap, VerifiedSnapshot)
    assert isinstance(delta, VerifiedDelta)
    assert snap.version == delta.version == version
    assert ("version" in signing["snapshot"]["document"]) is (version == 2)
    # the signed header names its version: the domain is vpnreg.feed.v1 or vpnreg.feed.v2
    domain = f"vpnreg.feed.v{version}\x00".encode()
    assert bytes.fromhex(signing["snapshot"]["signing_bytes"]).startswith(domain)
    # Ed25519 is deterministic: the same key over the same bytes gives the committed signature.
    for name in ("snapshot", "delta"):
        doc = signing[name]
        expected = base64.b64decode(doc["document"]["signature"])
        assert private.sign(bytes.fromhex(doc["signing_bytes"])) == expected
    state = apply_delta(snap, delta)
    assert state.set_hash == signing["delta"]["document"]["set_hash"]
    assert state.version == version


def test_v1_vector_entries_are_enforced_generously() -> None:
    """A v1 entry reads as a v2 one: any port, any protocol, the day after its last day at
    12:00 UTC (when that day has ended everywhere)."""
    case = VECTORS[1]["entries"][0]["json"]
    (entry,) = EntryTable.from_json_list([case], version=1).to_entries()
    assert entry.valid_until == dt.datetime(2027, 2, 1, 12, 0, tzinfo=dt.UTC)
    assert entry.valid_until == v1_valid_until(dt.date(2027, 1, 31))
    assert entry.ports == (0, 65535)
    assert entry.protocols == frozenset()
    assert EntryTable.from_json_list([case], version=1) != EntryTable.from_entries([entry])
