"""Reading version 1 entries (ADR 0001's 64-byte record) for one release after ADR 0006.

A client still verifies v1 snapshots and deltas with the v1 encoding and signing domain, and
enforces each v1 entry as a v2 one: any port, any protocol, and an end generous enough that a v1
entry is never cut short (`v1_valid_until`). Nothing here writes v1 for the registry; the
signing side exists for the committed test vectors and the tests of this reading path.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Mapping
from typing import Any

from vpnreg.core.feed.entry import (
    ANY_PORTS,
    EPOCH,
    NETWORK_SIZE,
    AllowlistEntry,
    decode_network,
    encode_network,
    parse_network,
    parse_registration_id,
    peers_digest,
)
from vpnreg.core.feed.errors import MalformedDocument

#: Bytes of one encoded v1 entry.
V1_RECORD_SIZE = 64
V1_PEERS_DIGEST_AT = V1_RECORD_SIZE - 32
#: ADR 0001's record layout: big-endian, no padding.
V1_STRUCT = struct.Struct(">B16sBQIH32s")
V1_JSON_KEYS = frozenset({"prefix", "peers", "registration_id", "valid_until"})
#: The last day a date can hold, in days since 1970-01-01 (to_entries must be able to decode it).
V1_MAX_DAYS = (dt.date(9999, 12, 30) - EPOCH).days
#: A v1 entry's last day D has ended everywhere on Earth (UTC-12 included) at D+1 12:00 UTC.
V1_END_HOUR_UTC = 12
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

assert V1_STRUCT.size == V1_RECORD_SIZE


def v1_valid_until(last_day: dt.date) -> dt.datetime:
    """The v2 end of a v1 entry valid through `last_day`: the day after at 12:00 UTC."""
    return dt.datetime.combine(
        last_day + dt.timedelta(days=1), dt.time(V1_END_HOUR_UTC), tzinfo=dt.UTC
    )


def parse_date(text: object) -> dt.date:
    """Parse a YYYY-MM-DD day on or after 1970-01-01."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise MalformedDocument("valid_until must be a YYYY-MM-DD string")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise MalformedDocument(f"bad valid_until {text!r}: {exc}") from None
    if not EPOCH <= day <= EPOCH + dt.timedelta(days=V1_MAX_DAYS):
        raise MalformedDocument("valid_until out of range")
    return day


def parse_v1(obj: object) -> tuple[bytes, bytes]:
    """(64-byte record, concatenated sorted peer encodings) of a v1 JSON entry, strictly."""
    if not isinstance(obj, Mapping) or set(obj) != V1_JSON_KEYS:
        raise MalformedDocument(
            "a version 1 entry must have exactly prefix, peers, registration_id, valid_until"
        )
    peers = obj["peers"]
    if not isinstance(peers, list):
        raise MalformedDocument("peers must be a list")
    prefix = parse_network(obj["prefix"])
    encoded = sorted({encode_network(parse_network(p)) for p in peers})
    if len(encoded) > 2**16 - 1:
        raise MalformedDocument("at most 65535 peers")
    day = parse_date(obj["valid_until"])
    head = encode_network(prefix)
    record = V1_STRUCT.pack(
        head[0],
        head[1:17],
        head[17],
        parse_registration_id(obj["registration_id"]),
        (day - EPOCH).days,
        len(encoded),
        peers_digest(encoded),
    )
    return record, b"".join(encoded)


def _split_peers(peer_bytes: bytes) -> list[bytes]:
    return [peer_bytes[j : j + NETWORK_SIZE] for j in range(0, len(peer_bytes), NETWORK_SIZE)]


def v1_entry(record: bytes, peer_bytes: bytes) -> AllowlistEntry:
    """The v2 entry a v1 record is enforced as (any port, any protocol, the generous end)."""
    _, _, _, reg, days, _, _ = V1_STRUCT.unpack(record)
    return AllowlistEntry(
        prefix=decode_network(record[:NETWORK_SIZE]),
        peers=tuple(decode_network(p) for p in _split_peers(peer_bytes)),
        registration_id=reg,
        valid_until=v1_valid_until(EPOCH + dt.timedelta(days=days)),
    )


def v1_json(record: bytes, peer_bytes: bytes) -> dict[str, Any]:
    """The v1 JSON form of a v1 record (what the v1 document said)."""
    _, _, _, reg, days, _, _ = V1_STRUCT.unpack(record)
    return {
        "prefix": str(decode_network(record[:NETWORK_SIZE])),
        "peers": [str(decode_network(p)) for p in _split_peers(peer_bytes)],
        "registration_id": reg,
        "valid_until": (EPOCH + dt.timedelta(days=days)).isoformat(),
    }


def encode_v1(entry: AllowlistEntry) -> bytes | None:
    """The v1 record a v2 entry was read from, or None when no v1 entry reads as it."""
    end = entry.valid_until
    if (
        entry.ports != ANY_PORTS
        or entry.protocols
        or (end.hour, end.minute, end.second) != (V1_END_HOUR_UTC, 0, 0)
    ):
        return None
    last_day = end.date() - dt.timedelta(days=1)
    if last_day < EPOCH:
        return None
    head = encode_network(entry.prefix)
    return V1_STRUCT.pack(
        head[0],
        head[1:17],
        head[17],
        entry.registration_id,
        (last_day - EPOCH).days,
        len(entry.peers),
        peers_digest(encode_network(p) for p in entry.peers),
    )
