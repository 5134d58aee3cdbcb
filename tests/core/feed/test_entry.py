"""AllowlistEntry: the fixed-width encoding, the JSON form, and EntryTable agreeing with it."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.feed.strategies import entries, entry_sets, networks
from vpnreg.core.feed import (
    RECORD_DTYPE,
    RECORD_SIZE,
    AllowlistEntry,
    EntryTable,
    MalformedDocument,
    decode_network,
    encode_network,
    set_hash,
)

V4 = ipaddress.ip_network("192.0.2.0/24")
PEER4 = ipaddress.ip_network("198.51.100.0/24")
PEER6 = ipaddress.ip_network("2001:db8::/32")


def make(**kw: Any) -> AllowlistEntry:
    base: dict[str, Any] = {
        "prefix": V4,
        "peers": (),
        "registration_id": 17,
        "valid_until": dt.date(2027, 1, 31),
    }
    return AllowlistEntry(**{**base, **kw})


def test_encoding_follows_the_adr_layout_byte_for_byte() -> None:
    entry = make(peers=(PEER6, PEER4))
    peer_bytes = b"".join(
        [
            bytes([4]) + bytes(10) + b"\xff\xff" + bytes([198, 51, 100, 0]) + bytes([24]),
            bytes([6]) + bytes.fromhex("20010db8") + bytes(12) + bytes([32]),
        ]
    )
    expected = (
        bytes([4])
        + bytes(10)
        + b"\xff\xff"
        + bytes([192, 0, 2, 0])
        + bytes([24])
        + struct.pack(">Q", 17)
        + struct.pack(">I", (dt.date(2027, 1, 31) - dt.date(1970, 1, 1)).days)
        + struct.pack(">H", 2)
        + hashlib.sha256(peer_bytes).digest()
    )
    assert entry.encode() == expected
    assert len(expected) == RECORD_SIZE


def test_no_peers_means_count_zero_and_zero_digest() -> None:
    record = make().encode()
    assert record[30:32] == b"\0\0"
    assert record[32:] == bytes(32)


def test_peers_are_sorted_and_deduplicated() -> None:
    entry = make(peers=(PEER6, PEER4, PEER6))
    assert entry.peers == (PEER4, PEER6)
    assert entry == make(peers=(PEER4, PEER6))
    assert entry.encode() == make(peers=(PEER4, PEER6)).encode()


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        pytest.param({"registration_id": 0}, ValueError, id="registration-id-zero"),
        pytest.param({"registration_id": 2**64}, ValueError, id="registration-id-too-big"),
        pytest.param({"registration_id": True}, ValueError, id="registration-id-bool"),
        pytest.param({"valid_until": dt.date(1969, 12, 31)}, ValueError, id="before-epoch"),
        pytest.param({"valid_until": dt.datetime(2027, 1, 1)}, ValueError, id="datetime-not-date"),
        pytest.param({"prefix": "192.0.2.0/24"}, TypeError, id="prefix-as-text"),
        pytest.param({"peers": ("198.51.100.0/24",)}, TypeError, id="peer-as-text"),
    ],
)
def test_constructor_refuses(kw: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        make(**kw)


GOOD = {"prefix": "192.0.2.0/24", "peers": [], "registration_id": 17, "valid_until": "2027-01-31"}


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({**GOOD, "prefix": "192.0.2.1/24"}, id="host-bits"),
        pytest.param({**GOOD, "prefix": "192.0.2.0/33"}, id="prefix-length"),
        pytest.param({**GOOD, "prefix": "192.000.2.0/24"}, id="leading-zeros"),
        pytest.param({**GOOD, "prefix": 3221225984}, id="prefix-not-text"),
        pytest.param({**GOOD, "peers": "198.51.100.0/24"}, id="peers-not-list"),
        pytest.param({**GOOD, "peers": ["198.51.100.1/24"]}, id="peer-host-bits"),
        pytest.param({**GOOD, "registration_id": "17"}, id="id-as-text"),
        pytest.param({**GOOD, "registration_id": 17.0}, id="id-as-float"),
        pytest.param({**GOOD, "registration_id": True}, id="id-as-bool"),
        pytest.param({**GOOD, "registration_id": -1}, id="id-negative"),
        pytest.param({**GOOD, "registration_id": 2**64}, id="id-too-big"),
        pytest.param({**GOOD, "valid_until": "2027-02-30"}, id="impossible-date"),
        pytest.param({**GOOD, "valid_until": "20270131"}, id="compact-date"),
        pytest.param({**GOOD, "valid_until": "1969-12-31"}, id="date-before-epoch"),
        pytest.param({**GOOD, "extra": 1}, id="extra-field"),
        pytest.param({k: v for k, v in GOOD.items() if k != "peers"}, id="missing-peers"),
        pytest.param(["192.0.2.0/24"], id="not-an-object"),
    ],
)
def test_json_refuses_malformed_entries(obj: Any) -> None:
    with pytest.raises(MalformedDocument):
        AllowlistEntry.from_json(obj)
    with pytest.raises(MalformedDocument):
        EntryTable.from_json_list([obj])


def test_json_round_trip_matches_the_brief_example() -> None:
    obj = {
        "prefix": "192.0.2.0/24",
        "peers": ["198.51.100.0/24"],
        "registration_id": 17,
        "valid_until": "2027-01-31",
    }
    entry = AllowlistEntry.from_json(obj)
    assert entry == make(peers=(PEER4,))
    assert entry.to_json() == obj


@given(networks())
def test_network_encoding_round_trips(network: Any) -> None:
    encoded = encode_network(network)
    assert len(encoded) == 18
    assert decode_network(encoded) == network


@given(entries())
def test_json_round_trip(entry: AllowlistEntry) -> None:
    assert AllowlistEntry.from_json(entry.to_json()) == entry


@given(entry_sets)
def test_entry_table_hash_equals_set_hash(items: list[AllowlistEntry]) -> None:
    table = EntryTable.from_entries(items)
    assert table.set_hash() == set_hash(items)
    assert len(table) == len({e.encode() for e in items})
    assert table.to_entries() == sorted(set(items), key=AllowlistEntry.encode)


@given(entry_sets)
def test_bulk_json_parse_agrees_with_entry_parse(items: list[AllowlistEntry]) -> None:
    objs = [e.to_json() for e in items]
    table = EntryTable.from_json_list(objs)
    assert table == EntryTable.from_entries(AllowlistEntry.from_json(o) for o in objs)
    assert EntryTable.from_json_list(table.to_json_list()) == table


@given(entry_sets)
def test_columns_build_the_same_records(items: list[AllowlistEntry]) -> None:
    reference = EntryTable.from_entries(items)
    structured = np.frombuffer(b"".join(e.encode() for e in items), dtype=RECORD_DTYPE)
    table = EntryTable.from_columns(
        family=structured["family"],
        address=structured["address"],
        prefix_len=structured["prefix_len"],
        registration_id=structured["registration_id"],
        valid_until_days=structured["valid_until"],
        peer_count=structured["peer_count"],
        peers_digest=structured["peers_digest"],
        peers=reference.peers,
    )
    assert table == reference
    assert table.set_hash() == set_hash(items)


@given(entry_sets, entry_sets)
def test_set_algebra_matches_python_sets(a: list[AllowlistEntry], b: list[AllowlistEntry]) -> None:
    ta, tb = EntryTable.from_entries(a), EntryTable.from_entries(b)
    sa, sb = set(a), set(b)
    added, removed = ta.diff(tb)
    assert set(added.to_entries()) == sb - sa
    assert set(removed.to_entries()) == sa - sb
    assert ta.apply(added=added, removed=removed) == tb
    assert set(ta.union(tb).to_entries()) == sa | sb
    assert set(ta.intersection(tb).to_entries()) == sa & sb
    assert set(ta.difference(tb).to_entries()) == sa - sb
    assert ta.isdisjoint(tb) == sa.isdisjoint(sb)
    assert all(e in ta for e in a)


def _row(**fields: Any) -> np.ndarray:
    row = np.zeros(1, dtype=RECORD_DTYPE)
    row["family"] = 4
    row["address"] = [0] * 10 + [0xFF, 0xFF, 192, 0, 2, 0]
    row["prefix_len"] = 24
    row["registration_id"] = 17
    row["valid_until"] = 20000
    for name, value in fields.items():
        row[name] = value
    return row


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"family": 5}, id="unknown-family"),
        pytest.param({"address": [0] * 12 + [192, 0, 2, 0]}, id="ipv4-not-mapped"),
        pytest.param({"prefix_len": 33}, id="ipv4-prefix-length"),
        pytest.param({"prefix_len": 16}, id="host-bits"),
        pytest.param(
            {"family": 6, "address": [0x20, 1, 0xD, 0xB8, *[0] * 11, 1], "prefix_len": 64},
            id="ipv6-host-bits",
        ),
        pytest.param(
            {"family": 6, "address": [0x20, 1, 0xD, 0xB8, *[0] * 12], "prefix_len": 129},
            id="ipv6-prefix-length",
        ),
        pytest.param({"registration_id": 0}, id="registration-id-zero"),
        pytest.param({"peers_digest": [1] * 32}, id="digest-without-peers"),
        pytest.param({"peer_count": 1, "peers_digest": [1] * 32}, id="peers-not-given"),
    ],
)
def test_records_are_validated(fields: dict[str, Any]) -> None:
    assert len(EntryTable.from_records(_row())) == 1
    with pytest.raises(ValueError, match=r"."):
        EntryTable.from_records(_row(**fields))


@given(st.lists(st.binary(min_size=64, max_size=64), max_size=30))
def test_numpy_byte_order_is_python_byte_order(rows: list[bytes]) -> None:
    # The set hash depends on numpy sorting fixed-width bytes exactly as Python sorts bytes,
    # embedded and trailing zero bytes included.
    records = np.frombuffer(b"".join(rows), dtype="S64")
    ordered = np.sort(records)
    assert ordered.tobytes() == b"".join(sorted(rows))
    assert len(np.unique(records)) == len(set(rows))


@given(entry_sets)
def test_json_text_is_the_json_of_the_entry_list(items: list[AllowlistEntry]) -> None:
    table = EntryTable.from_entries(items)
    assert json.loads(table.to_json_text()) == table.to_json_list()
