"""Regenerates tests/vectors/feed.json, the committed feed test vectors.

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
    set_hash,
    sign_delta,
    sign_snapshot,
    signing_bytes,
)
from vpnreg.core.feed.signing import DocumentType, changes_digest

PATH = Path(__file__).with_name("feed.json")

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


def build() -> dict[str, Any]:
    key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
    entries = [AllowlistEntry.from_json(obj) for obj in ENTRY_JSON]
    mode = EnforcementMode.from_json(MODES[2])
    snapshot = sign_snapshot(
        session_id=SESSION,
        serial=7,
        entries=entries[:3],
        mode=mode,
        created=CREATED,
        expires=EXPIRES,
        private_key=key,
    )
    added, removed = EntryTable.from_entries(entries[3:]), EntryTable.from_entries(entries[:1])
    after = set_hash([*entries[1:3], *entries[3:]])
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
        DocumentType.SNAPSHOT, SESSION, 7, 0, snapshot["set_hash"], mode, CREATED, EXPIRES
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
    )
    return {
        "description": "Feed test vectors (ADR 0001). Regenerate: python -m tests.vectors.generate",
        "networks": [
            {"network": n, "encoding": encode_network(ipaddress.ip_network(n)).hex()}
            for n in NETWORKS
        ],
        "entries": [
            {"json": obj, "encoding": entry.encode().hex()}
            for obj, entry in zip(ENTRY_JSON, entries, strict=True)
        ],
        "sets": [
            {"name": name, "members": members, "set_hash": set_hash(entries[i] for i in members)}
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
    PATH.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
