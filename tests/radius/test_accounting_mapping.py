"""What an Accounting-Request means (vpnreg.core.radius_accounting), without sockets: tables over
decoded attributes, then packets encoded and decoded by pyrad with the shipped dictionary."""

from __future__ import annotations

import hashlib

import pytest
from pyrad.packet import AcctPacket

from vpnreg.core.bindings import BindingEvent
from vpnreg.core.radius_accounting import (
    AccountingError,
    ClientAttributes,
    DuplicateCache,
    accounting_record,
    parse_port_block,
)
from vpnreg.radius.server import authentic, decoded_attributes, load_dictionary
from vpnreg.registry.services.radius_clients import RadiusClientView

DEFAULT = ClientAttributes()
CGNAT = ClientAttributes(subscriber="Class", ports="VPNReg-Port-Range")
BASE = {"User-Name": ["SUB-1"], "Acct-Session-Id": ["s1"]}

MAPPED = [
    pytest.param(
        {**BASE, "Acct-Status-Type": ["Start"], "Framed-IP-Address": ["192.0.2.7"]},
        DEFAULT,
        [BindingEvent("start", "SUB-1", "s1", "192.0.2.7")],
        id="start-ipv4",
    ),
    pytest.param(
        {**BASE, "Acct-Status-Type": ["Interim-Update"], "Framed-IP-Address": ["192.0.2.7"]},
        DEFAULT,
        [BindingEvent("interim", "SUB-1", "s1", "192.0.2.7")],
        id="interim",
    ),
    pytest.param(
        {**BASE, "Acct-Status-Type": ["Alive"], "Framed-IP-Address": ["192.0.2.7"]},
        DEFAULT,
        [BindingEvent("interim", "SUB-1", "s1", "192.0.2.7")],
        id="alive-is-interim",
    ),
    pytest.param(
        {**BASE, "Acct-Status-Type": ["Stop"], "Framed-IP-Address": ["192.0.2.7"]},
        DEFAULT,
        [BindingEvent("stop", "SUB-1", "s1", "192.0.2.7")],
        id="stop",
    ),
    pytest.param(
        {**BASE, "Acct-Status-Type": ["Start"], "Delegated-IPv6-Prefix": ["2001:db8:5::/56"]},
        DEFAULT,
        [BindingEvent("start", "SUB-1", "s1#Delegated-IPv6-Prefix", "2001:db8:5::/56")],
        id="delegated-ipv6-prefix",
    ),
    pytest.param(
        {
            **BASE,
            "Acct-Status-Type": ["Start"],
            "Framed-IP-Address": ["192.0.2.7"],
            "Framed-IPv6-Prefix": ["2001:db8:6::/64"],
            "Delegated-IPv6-Prefix": ["2001:db8:5::/56"],
        },
        DEFAULT,
        [
            BindingEvent("start", "SUB-1", "s1", "192.0.2.7"),
            BindingEvent("start", "SUB-1", "s1#Framed-IPv6-Prefix", "2001:db8:6::/64"),
            BindingEvent("start", "SUB-1", "s1#Delegated-IPv6-Prefix", "2001:db8:5::/56"),
        ],
        id="dual-stack-one-event-per-address",
    ),
    pytest.param(
        {
            "Class": [b"ACC-42"],
            "User-Name": ["line-7@bng"],
            "Acct-Session-Id": ["s9"],
            "Acct-Status-Type": ["Start"],
            "Framed-IP-Address": ["100.64.3.9"],
            "VPNReg-Port-Range": ["203.0.113.7 1024-2047"],
            "Delegated-IPv6-Prefix": ["2001:db8:5::/56"],
        },
        CGNAT,
        [
            BindingEvent("start", "ACC-42", "s9", "203.0.113.7", (1024, 2047)),
            BindingEvent("start", "ACC-42", "s9#Delegated-IPv6-Prefix", "2001:db8:5::/56"),
        ],
        id="class-and-port-block-with-public-address",
    ),
    pytest.param(
        {
            **BASE,
            "Class": [b"ACC-42"],
            "Acct-Status-Type": ["Start"],
            "Framed-IP-Address": ["203.0.113.7"],
            "VPNReg-Port-Range": ["1024-2047"],
        },
        CGNAT,
        [BindingEvent("start", "ACC-42", "s1", "203.0.113.7", (1024, 2047))],
        id="port-block-alone",
    ),
    pytest.param(
        {**BASE, "Acct-Status-Type": ["Start"], "Framed-IP-Address": ["203.0.113.7"]},
        ClientAttributes(ports="VPNReg-Port-Range"),
        [BindingEvent("start", "SUB-1", "s1", "203.0.113.7")],
        id="no-port-block-sent-whole-address",
    ),
    pytest.param({"Acct-Status-Type": ["Accounting-On"]}, DEFAULT, [], id="accounting-on"),
    pytest.param({"Acct-Status-Type": ["Accounting-Off"]}, DEFAULT, [], id="accounting-off"),
    pytest.param({**BASE, "Acct-Status-Type": [15]}, DEFAULT, [], id="unnamed-status-type"),
]


@pytest.mark.parametrize(("attributes", "client", "events"), MAPPED)
def test_attributes_map_to_binding_events(
    attributes: dict[str, list[object]], client: ClientAttributes, events: list[BindingEvent]
) -> None:
    assert list(accounting_record(attributes, client).events) == events


V4 = {**BASE, "Acct-Status-Type": ["Start"], "Framed-IP-Address": ["192.0.2.7"]}


def _without(name: str) -> dict[str, list[object]]:
    return {key: value for key, value in V4.items() if key != name}


def _block(value: str) -> dict[str, list[object]]:
    return {**V4, "Class": [b"A"], "VPNReg-Port-Range": [value]}


REFUSED = [
    pytest.param(_without("Acct-Status-Type"), DEFAULT, "Acct-Status-Type", id="no-status"),
    pytest.param(_without("User-Name"), DEFAULT, "no User-Name", id="no-subscriber"),
    pytest.param(V4, CGNAT, "no Class", id="no-configured-subscriber-attribute"),
    pytest.param({**V4, "Class": [b"\xff"]}, CGNAT, "Class is not ASCII", id="class-not-ascii"),
    pytest.param(_without("Acct-Session-Id"), DEFAULT, "Acct-Session-Id", id="no-session"),
    pytest.param(_without("Framed-IP-Address"), DEFAULT, "holds no address", id="no-address"),
    pytest.param(_block("1024"), CGNAT, "exactly one LO-HI", id="port-block-without-range"),
    pytest.param(_block("2047-1024"), CGNAT, "LO <= HI", id="port-block-reversed"),
    pytest.param(_block("1-2 3-4"), CGNAT, "exactly one LO-HI", id="port-block-two-ranges"),
    pytest.param(_block("0-70000"), CGNAT, "65535", id="port-block-beyond-65535"),
    pytest.param(_block("192.0.2.1 198.51.100.1 1-2"), CGNAT, "more than one", id="two-addresses"),
]


@pytest.mark.parametrize(("attributes", "client", "message"), REFUSED)
def test_unreadable_records_say_why(
    attributes: dict[str, list[object]], client: ClientAttributes, message: str
) -> None:
    with pytest.raises(AccountingError, match=message):
        accounting_record(attributes, client)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1024-2047", ((1024, 2047), None)),
        ("  0-65535 ", ((0, 65535), None)),
        ("203.0.113.7 1024-2047 router Base nat-policy-1", ((1024, 2047), "203.0.113.7")),
        ("1024-1024 203.0.113.7", ((1024, 1024), "203.0.113.7")),
    ],
)
def test_port_block_format(value: str, expected: tuple[tuple[int, int], str | None]) -> None:
    assert parse_port_block(value) == expected


def test_duplicate_cache_answers_again_and_forgets_after_its_lifetime() -> None:
    cache = DuplicateCache(lifetime=30.0, capacity=2)
    key = ("192.0.2.1", 1812, 7, b"a" * 16)
    assert cache.seen(key, 0.0) is None
    assert cache.seen(key, 1.0) == ("in-flight", None)
    cache.answered(key, b"reply", 2.0)
    assert cache.seen(key, 3.0) == ("answered", b"reply")
    assert cache.seen(key, 32.5) is None  # expired: a new request with the same id and vector
    cache.forget(key)
    assert cache.seen(key, 33.0) is None
    # Capacity: the oldest entry goes first.
    other, third = ("192.0.2.1", 1812, 8, b"b" * 16), ("192.0.2.1", 1812, 9, b"c" * 16)
    assert cache.seen(other, 34.0) is None
    assert cache.seen(third, 35.0) is None
    assert len(cache) == 2
    assert cache.seen(key, 36.0) is None


def _client(subscriber: str = "User-Name", ports: str | None = None) -> RadiusClientView:
    return RadiusClientView(1, "Indus Fibre", "192.0.2.1", "testing123", subscriber, ports)


def _through_pyrad(secret: bytes, **attributes: object) -> AcctPacket:
    """An Accounting-Request encoded as a NAS would, then decoded as the server does."""
    dictionary = load_dictionary([])
    sent = AcctPacket(secret=secret, dict=dictionary, **attributes)
    raw = sent.RequestPacket()
    return AcctPacket(packet=raw, secret=secret, dict=dictionary)


def test_the_shipped_dictionary_decodes_what_the_mapping_reads() -> None:
    received = _through_pyrad(
        b"testing123",
        Acct_Status_Type="Start",
        Acct_Session_Id="0000ab12",
        Class=b"ACC-42",
        User_Name="line-7@bng",
        Framed_IP_Address="100.64.3.9",
        Delegated_IPv6_Prefix="2001:db8:5::/56",
        VPNReg_Port_Range="203.0.113.7 1024-2047",
        Acct_Input_Octets=12345,
    )
    assert received.VerifyAcctRequest()
    client = _client("Class", "VPNReg-Port-Range")
    record = accounting_record(decoded_attributes(received, load_dictionary([]), client), CGNAT)
    assert record.events == (
        BindingEvent("start", "ACC-42", "0000ab12", "203.0.113.7", (1024, 2047)),
        BindingEvent("start", "ACC-42", "0000ab12#Delegated-IPv6-Prefix", "2001:db8:5::/56"),
    )


def test_a_request_signed_with_another_secret_does_not_verify() -> None:
    dictionary = load_dictionary([])
    sent = AcctPacket(secret=b"right", dict=dictionary, Acct_Status_Type="Stop", User_Name="S")
    raw = sent.RequestPacket()
    assert AcctPacket(packet=raw, secret=b"right", dict=dictionary).VerifyAcctRequest()
    assert not AcctPacket(packet=raw, secret=b"wrong", dict=dictionary).VerifyAcctRequest()
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])
    assert not AcctPacket(packet=tampered, secret=b"right", dict=dictionary).VerifyAcctRequest()


def test_nokia_alc_nat_port_range_reads_like_the_shipped_attribute() -> None:
    received = _through_pyrad(
        b"s3cret",
        Acct_Status_Type="Interim-Update",
        Acct_Session_Id="x1",
        User_Name="SUB-5",
        Framed_IP_Address="100.64.0.9",
        Alc_Nat_Port_Range="203.0.113.9 4096-8191 router Base nat-policy-1",
    )
    client = _client(ports="Alc-Nat-Port-Range")
    attributes = decoded_attributes(received, load_dictionary([]), client)
    record = accounting_record(attributes, ClientAttributes(ports="Alc-Nat-Port-Range"))
    assert record.events == (BindingEvent("interim", "SUB-5", "x1", "203.0.113.9", (4096, 8191)),)


def test_a_message_authenticator_when_present_must_verify_too() -> None:
    dictionary = load_dictionary([])
    sent = AcctPacket(
        secret=b"right", dict=dictionary, message_authenticator=True,
        Acct_Status_Type="Start", User_Name="S", Acct_Session_Id="m1",
    )  # fmt: skip
    raw = sent.RequestPacket()
    received = AcctPacket(packet=raw, secret=b"right", dict=dictionary)
    assert received.message_authenticator and authentic(received)
    # Flip a bit of the Message-Authenticator's value (attribute 80), then sign the Request
    # Authenticator again: only the Message-Authenticator is wrong now.
    at = raw.index(bytes([80, 18]), 20) + 2  # after the header
    forged = AcctPacket(packet=raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :], secret=b"right",
                        dict=dictionary)  # fmt: skip
    body = forged.raw_packet
    vector = hashlib.md5(body[:4] + bytes(16) + body[20:] + b"right").digest()  # noqa: S324
    resigned = AcctPacket(packet=body[:4] + vector + body[20:], secret=b"right", dict=dictionary)
    assert resigned.VerifyAcctRequest()
    assert not authentic(resigned)
