"""AllowlistEntry (version 2, ADR 0006): the fixed-width encoding, the JSON form, and EntryTable
agreeing with it."""

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
    VpnProtocol,
    decode_network,
    encode_network,
    set_hash,
)

V4 = ipaddress.ip_network("192.0.2.0/24")
PEER4 = ipaddress.ip_network("198.51.100.0/24")
PEER6 = ipaddress.ip_network("2001:db8::/32")
UNTIL = dt.datetime(2027, 1, 31, 19, tzinfo=dt.UTC)


def make(**kw: Any) -> AllowlistEntry:
    base: dict[str, Any] = {
        "prefix": V4,
        "peers": (),
        "registration_id": 17,
        "valid_until": UNTIL,
    }
    return AllowlistEntry(**{**base, **kw})


def test_encoding_follows_the_adr_layout_byte_for_byte() -> None:
    entry = make(
        peers=(PEER6, PEER4),
        ports=(1024, 2047),
        protocols=frozenset({VpnProtocol.WIREGUARD, VpnProtocol.OPENVPN, VpnProtocol.SSTP}),
    )
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
        + struct.pack(">Q", int(UNTIL.timestamp()))
        + struct.pack(">HH", 1024, 2047)
        # bits in ADR 0001's protocol order: openvpn 0, wireguard 1, sstp 5
        + struct.pack(">H", 0b100011)
        + struct.pack(">H", 2)
        + hashlib.sha256(peer_bytes).digest()
    )
    assert entry.encode() == expected
    assert len(expected) == RECORD_SIZE == 74


def test_no_peers_means_count_zero_and_zero_digest() -> None:
    record = make().encode()
    assert record[40:42] == b"\0\0"
    assert record[42:] == bytes(32)


def test_defaults_are_any_port_and_any_protocol() -> None:
    record = make().encode()
    assert record[34:40] == struct.pack(">HHH", 0, 65535, 0)
    assert make().any_port


def test_valid_until_is_normalised_to_utc_and_exclusive() -> None:
    karachi = dt.timezone(dt.timedelta(hours=5))
    entry = make(valid_until=dt.datetime(2027, 2, 1, 0, 0, tzinfo=karachi))
    assert entry.valid_until == UNTIL
    assert entry.valid_until.tzinfo is dt.UTC
    assert entry.holds_at(UNTIL - dt.timedelta(seconds=1))
    assert not entry.holds_at(UNTIL)


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
        pytest.param(
            {"valid_until": dt.datetime(1969, 12, 31, tzinfo=dt.UTC)}, ValueError, id="before-epoch"
        ),
        pytest.param({"valid_until": dt.datetime(2027, 1, 1)}, ValueError, id="naive-datetime"),
        pytest.param({"valid_until": dt.date(2027, 1, 1)}, ValueError, id="date-not-datetime"),
        pytest.param(
            {"valid_until": UNTIL.replace(microsecond=5)}, ValueError, id="not-whole-seconds"
        ),
        pytest.param({"ports": (2048, 1024)}, ValueError, id="ports-reversed"),
        pytest.param({"ports": (0, 65536)}, ValueError, id="port-too-big"),
        pytest.param({"ports": (-1, 10)}, ValueError, id="port-negative"),
        pytest.param({"ports": (1,)}, ValueError, id="ports-one-value"),
        pytest.param({"protocols": frozenset({"none"})}, ValueError, id="protocol-none"),
        pytest.param({"protocols": frozenset({"telnet"})}, ValueError, id="protocol-unknown"),
        pytest.param({"prefix": "192.0.2.0/24"}, TypeError, id="prefix-as-text"),
        pytest.param({"peers": ("198.51.100.0/24",)}, TypeError, id="peer-as-text"),
    ],
)
def test_constructor_refuses(kw: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        make(**kw)


GOOD = {
    "prefix": "192.0.2.0/24",
    "peers": [],
    "registration_id": 17,
    "valid_until": "2027-01-31T19:00:00Z",
    "ports": [0, 65535],
    "protocols": [],
}


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
        pytest.param({**GOOD, "valid_until": "2027-02-30T00:00:00Z"}, id="impossible-date"),
        pytest.param({**GOOD, "valid_until": "2027-01-31"}, id="v1-date"),
        pytest.param({**GOOD, "valid_until": "2027-01-31T19:00:00.5Z"}, id="fraction"),
        pytest.param({**GOOD, "valid_until": "2027-01-31T19:00:00+05:00"}, id="offset"),
        pytest.param({**GOOD, "valid_until": "1969-12-31T23:59:59Z"}, id="before-epoch"),
        pytest.param({**GOOD, "ports": [2048, 1024]}, id="ports-reversed"),
        pytest.param({**GOOD, "ports": [0, 65536]}, id="port-too-big"),
        pytest.param({**GOOD, "ports": [0]}, id="ports-one-value"),
        pytest.param({**GOOD, "ports": [0, 65535.0]}, id="port-float"),
        pytest.param({**GOOD, "ports": None}, id="ports-null"),
        pytest.param({**GOOD, "protocols": ["telnet"]}, id="protocol-unknown"),
        pytest.param({**GOOD, "protocols": ["none"]}, id="protocol-none"),
        pytest.param({**GOOD, "protocols": ["openvpn", "openvpn"]}, id="protocol-twice"),
        pytest.param({**GOOD, "protocols": "openvpn"}, id="protocols-not-list"),
        pytest.param({k: v for k, v in GOOD.items() if k != "ports"}, id="missing-ports"),
        pytest.param({k: v for k, v in GOOD.items() if k != "protocols"}, id="missing-protocols"),
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
        "valid_until": "2027-01-31T19:00:00Z",
        "ports": [0, 65535],
        "protocols": ["openvpn", "wireguard"],
    }
    entry = AllowlistEntry.from_json(obj)
    protocols = frozenset({VpnProtocol.WIREGUARD, VpnProtocol.OPENVPN})
    assert entry == make(peers=(PEER4,), protocols=protocols)
    assert entry.to_json() == obj


def test_protocols_in_any_order_are_the_same_entry() -> None:
    obj = {**GOOD, "protocols": ["wireguard", "openvpn"]}
    entry = AllowlistEntry.from_json(obj)
    assert entry.to_json()["protocols"] == ["openvpn", "wireguard"]
    assert EntryTable.from_json_list([obj]) == EntryTable.from_entries([entry])


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
        valid_until_s=structured["valid_until"],
        port_lo=structured["port_lo"],
        port_hi=structured["port_hi"],
        protocols=structured["protocols"],
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
    row["valid_until"] = 1_800_000_000
    row["port_hi"] = 65535
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
        pytest.param({"port_lo": 2048, "port_hi": 1024}, id="ports-reversed"),
        pytest.param({"protocols": 1 << 7}, id="unknown-protocol-bit"),
        pytest.param({"valid_until": 2**63}, id="valid-until-beyond-9999"),
    ],
)
def test_records_are_validated(fields: dict[str, Any]) -> None:
    assert len(EntryTable.from_records(_row())) == 1
    with pytest.raises(ValueError, match=r"."):
        EntryTable.from_records(_row(**fields))


@given(st.lists(st.binary(min_size=74, max_size=74), max_size=30))
def test_numpy_byte_order_is_python_byte_order(rows: list[bytes]) -> None:
    # The set hash depends on numpy sorting fixed-width bytes exactly as Python sorts bytes,
    # embedded and trailing zero bytes included.
    records = np.frombuffer(b"".join(rows), dtype="S74")
    ordered = np.sort(records)
    assert ordered.tobytes() == b"".join(sorted(rows))
    assert len(np.unique(records)) == len(set(rows))


@given(entry_sets)
def test_json_text_is_the_json_of_the_entry_list(items: list[AllowlistEntry]) -> None:
    table = EntryTable.from_entries(items)
    assert json.loads(table.to_json_text()) == table.to_json_list()


def test_tables_of_two_versions_do_not_combine() -> None:
    v2 = EntryTable.from_entries([make()])
    v1 = EntryTable.from_json_list(
        [
            {
                "prefix": "192.0.2.0/24",
                "peers": [],
                "registration_id": 17,
                "valid_until": "2027-01-31",
            }
        ],
        version=1,
    )
    assert v1.version == 1 and v2.version == 2
    assert v1 != v2
    with pytest.raises(ValueError, match="version"):
        v2.union(v1)
    # a v1 entry is held as the v2 entry it is enforced as, and found as such
    (as_v2,) = v1.to_entries()
    assert as_v2 in v1
    assert make() not in v1
