"""Regenerates the committed feed test vectors: tests/vectors/feed-v2.json (entry version 2,
ADR 0006) and tests/vectors/feed.json (version 1, ADR 0001, built through the v1 reading path:
regenerating must leave it byte for byte as committed).

Run from the repository root and review the diff: `.venv/bin/python -m tests.vectors.generate`.
Tests read the committed file; they never regenerate it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vpnreg.core.feed import (
    AllowlistEntry,
    EnforcementMode,
    EntryTable,
    Header,
    encode_network,
    sign_delta,
    sign_snapshot,
    signing_bytes,
)
from vpnreg.core.feed.entry_v1 import parse_v1
from vpnreg.core.feed.signing import DocumentType, changes_digest

PATH = Path(__file__).with_name("feed.json")
PATH_V2 = Path(__file__).with_name("feed-v2.json")

#: A fixed, public test key (never used outside tests).
KEY_SEED = hashlib.sha256(b"vpnreg feed test vector key").digest()
SESSION = "5f0c6a4e9b7d4c1e8a2b3c4d5e6f7081"
CREATED = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
EXPIRES = dt.datetime(2026, 1, 16, 9, 0, tzinfo=dt.UTC)

ENTRY_JSON: list[dict[str, Any]] = [
    {"prefix": "192.0.2.0/24", "peers": [], "registration_id": 17, "valid_until": "2027-01-31"},
    {
        "prefix": "198.51.100.0/24",
        "peers": ["203.0.113.0/24", "2001:db8:ffff::/48"],
        "registration_id": 18,
        "valid_until": "2026-12-31",
    },
    {"prefix": "2001:db8::/32", "peers": [], "registration_id": 19, "valid_until": "2027-06-30"},
    {
        "prefix": "2001:db8:1::/48",
        "peers": ["198.51.100.7/32"],
        "registration_id": 2**64 - 1,
        "valid_until": "1970-01-01",
    },
    {"prefix": "203.0.113.128/25", "peers": [], "registration_id": 1, "valid_until": "2099-12-31"},
]

#: Version 2 entries: the end instant, port ranges (a CGNAT port block) and protocol sets.
ENTRY_JSON_V2: list[dict[str, Any]] = [
    {
        "prefix": "192.0.2.0/24",
        "peers": [],
        "registration_id": 17,
        "valid_until": "2027-01-31T19:00:00Z",
        "ports": [0, 65535],
        "protocols": [],
    },
    {
        "prefix": "198.51.100.7/32",
        "peers": ["203.0.113.0/24", "2001:db8:ffff::/48"],
        "registration_id": 18,
        "valid_until": "2026-12-31T23:59:59Z",
        "ports": [1024, 2047],
        "protocols": ["wireguard"],
    },
    {
        "prefix": "2001:db8::/32",
        "peers": [],
        "registration_id": 19,
        "valid_until": "2027-06-30T19:00:00Z",
        "ports": [0, 65535],
        "protocols": ["openvpn", "ipsec", "other-vpn"],
    },
    {
        "prefix": "2001:db8:1::/48",
        "peers": ["198.51.100.7/32"],
        "registration_id": 2**64 - 1,
        "valid_until": "1970-01-01T00:00:00Z",
        "ports": [443, 443],
        "protocols": ["sstp"],
    },
    {
        "prefix": "198.51.100.7/32",
        "peers": [],
        "registration_id": 1,
        "valid_until": "2099-12-31T19:00:00Z",
        "ports": [2048, 3071],
        "protocols": [],
    },
]

SETS: list[tuple[str, list[int]]] = [
    ("empty", []),
    ("one ipv4", [0]),
    ("ipv4 only", [0, 1, 4]),
    ("ipv6 only", [2, 3]),
    ("all", [0, 1, 2, 3, 4]),
    ("all reversed with a duplicate", [4, 3, 2, 1, 0, 0]),
]

MODES: list[dict[str, Any]] = [
    {"default": "enforce", "per_protocol": {}},
    {"default": "dry-run", "per_protocol": {}},
    {"default": "enforce", "per_protocol": {"wireguard": "dry-run", "other-vpn": "enforce"}},
]

NETWORKS = ["0.0.0.0/0", "192.0.2.1/32", "::/0", "2001:db8::/32", "::ffff:192.0.2.0/120"]


def _tables(version: int) -> tuple[list[dict[str, Any]], list[EntryTable], list[str]]:
    """(entry JSON, one-entry tables, record hex) of a version's entries."""
    objs = ENTRY_JSON_V2 if version == 2 else ENTRY_JSON
    tables = [EntryTable.from_json_list([obj], version=version) for obj in objs]
    if version == 2:
        records = [AllowlistEntry.from_json(obj).encode().hex() for obj in objs]
    else:
        records = [parse_v1(obj)[0].hex() for obj in objs]
    return objs, tables, records


def _union(tables: list[EntryTable], version: int) -> EntryTable:
    result = EntryTable.empty(version)
    for table in tables:
        result = result.union(table)
    return result


def build(version: int = 2) -> dict[str, Any]:
    key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
    objs, entries, records = _tables(version)
    mode = EnforcementMode.from_json(MODES[2])
    snapshot = sign_snapshot(
        session_id=SESSION,
        serial=7,
        entries=_union(entries[:3], version),
        mode=mode,
        created=CREATED,
        expires=EXPIRES,
        private_key=key,
    )
    added, removed = _union(entries[3:], version), _union(entries[:1], version)
    after = _union(entries[1:], version).set_hash()
    delta = sign_delta(
        session_id=SESSION,
        serial=8,
        previous_serial=7,
        added=added,
        removed=removed,
        set_hash=after,
        mode=mode,
        created=CREATED + dt.timedelta(minutes=5),
        expires=EXPIRES + dt.timedelta(minutes=5),
        private_key=key,
    )
    snapshot_header = Header(
        DocumentType.SNAPSHOT,
        SESSION,
        7,
        0,
        snapshot["set_hash"],
        mode,
        CREATED,
        EXPIRES,
        version=version,
    )
    delta_header = Header(
        DocumentType.DELTA,
        SESSION,
        8,
        7,
        after,
        mode,
        CREATED + dt.timedelta(minutes=5),
        EXPIRES + dt.timedelta(minutes=5),
        changes_digest(added=added, removed=removed),
        version,
    )
    adr = "ADR 0006, entry version 2" if version == 2 else "ADR 0001"
    return {
        "description": f"Feed test vectors ({adr}). Regenerate: python -m tests.vectors.generate",
        "networks": [
            {"network": n, "encoding": encode_network(ipaddress.ip_network(n)).hex()}
            for n in NETWORKS
        ],
        "entries": [
            {"json": obj, "encoding": record} for obj, record in zip(objs, records, strict=True)
        ],
        "sets": [
            {
                "name": name,
                "members": members,
                "set_hash": _union([entries[i] for i in members], version).set_hash(),
            }
            for name, members in SETS
        ],
        "modes": [
            {"json": obj, "encoding": EnforcementMode.from_json(obj).encode().hex()}
            for obj in MODES
        ],
        "signing": {
            "private_key_seed": KEY_SEED.hex(),
            "public_key": key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex(),
            "key_id": snapshot["key_id"],
            "now": "2026-01-15T12:00:00Z",
            "snapshot": {
                "signing_bytes": signing_bytes(snapshot_header).hex(),
                "document": snapshot,
            },
            "delta": {"signing_bytes": signing_bytes(delta_header).hex(), "document": delta},
        },
    }


def main() -> None:
    for path, version in ((PATH, 1), (PATH_V2, 2)):
        path.write_text(json.dumps(build(version), indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
