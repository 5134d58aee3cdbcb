"""The committed test vectors (tests/vectors/feed.json) hold for this implementation."""

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
    verify_document,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "feed.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS["networks"], ids=lambda c: c["network"])
def test_network_vectors(case: dict[str, str]) -> None:
    assert encode_network(ipaddress.ip_network(case["network"])).hex() == case["encoding"]


@pytest.mark.parametrize("case", VECTORS["entries"], ids=lambda c: c["json"]["prefix"])
def test_entry_vectors(case: dict[str, Any]) -> None:
    entry = AllowlistEntry.from_json(case["json"])
    assert entry.encode().hex() == case["encoding"]
    assert EntryTable.from_json_list([case["json"]]).encoded().hex() == case["encoding"]


@pytest.mark.parametrize("case", VECTORS["sets"], ids=lambda c: c["name"])
def test_set_hash_vectors(case: dict[str, Any]) -> None:
    objs = [VECTORS["entries"][i]["json"] for i in case["members"]]
    assert set_hash(AllowlistEntry.from_json(o) for o in objs) == case["set_hash"]
    assert EntryTable.from_json_list(objs).set_hash() == case["set_hash"]


def test_empty_set_hash_is_sha256_of_nothing() -> None:
    empty = next(c for c in VECTORS["sets"] if c["name"] == "empty")
    assert empty["set_hash"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("case", VECTORS["modes"], ids=lambda c: c["encoding"])
def test_mode_vectors(case: dict[str, Any]) -> None:
    assert EnforcementMode.from_json(case["json"]).encode().hex() == case["encoding"]


def test_signed_document_vectors() -> None:
    signing = VECTORS["signing"]
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(signing["private_key_seed"]))
    public = private.public_key()
    assert key_id(public) == signing["key_id"]
    trusted = {signing["key_id"]: public}
    now = dt.datetime.fromisoformat(signing["now"])
    snap = verify_document(dump_document(signing["snapshot"]["document"]), trusted=trusted, now=now)
    delta = verify_document(dump_document(signing["delta"]["document"]), trusted=trusted, now=now)
    assert isinstance(snap, VerifiedSnapshot)
    assert isinstance(delta, VerifiedDelta)
    # Ed25519 is deterministic: the same key over the same bytes gives the committed signature.
    for name in ("snapshot", "delta"):
        doc = signing[name]
        expected = base64.b64decode(doc["document"]["signature"])
        assert private.sign(bytes.fromhex(doc["signing_bytes"])) == expected
    state = apply_delta(snap, delta)
    assert state.set_hash == signing["delta"]["document"]["set_hash"]
