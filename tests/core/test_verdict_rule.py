"""The rule a reported verdict implies, and a gateway's serial against the registry's (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from vpnreg.core.policy import Rule
from vpnreg.core.verdict_rule import RegistrationTerms, implied_rule, serial_standing

ANY = RegistrationTerms(lists_peers=False, protocols=frozenset())
PEERS = RegistrationTerms(lists_peers=True, protocols=frozenset())
MIXED = RegistrationTerms(lists_peers=None, protocols=frozenset())
WG_ONLY = RegistrationTerms(lists_peers=False, protocols=frozenset({"wireguard"}))
WG_PEERS = RegistrationTerms(lists_peers=True, protocols=frozenset({"wireguard"}))


@pytest.mark.parametrize(
    ("verdict", "protocol", "registration", "terms", "rule"),
    [
        pytest.param("registered", "openvpn", 7, ANY, Rule.REGISTERED_ANY_PEER, id="any-peer"),
        pytest.param("registered", "openvpn", 7, PEERS, Rule.REGISTERED_LISTED_PEER, id="listed"),
        pytest.param("registered", "openvpn", 7, MIXED, None, id="registered-mixed-prefixes"),
        pytest.param("registered", "openvpn", 7, WG_ONLY, None, id="registered-against-terms"),
        pytest.param(
            "unregistered", "openvpn", 7, WG_PEERS, Rule.PROTOCOL_NOT_REGISTERED, id="protocol-miss"
        ),
        pytest.param(
            "unregistered", "wireguard", 7, WG_PEERS, Rule.PEER_NOT_LISTED, id="peer-miss"
        ),
        pytest.param(
            "unregistered",
            "wireguard",
            7,
            MIXED,
            Rule.PEER_NOT_LISTED,
            id="peer-miss-some-prefixes-list-peers",
        ),
        pytest.param("unregistered", "openvpn", 7, ANY, None, id="blocked-against-terms"),
        pytest.param("unregistered", "openvpn", None, None, Rule.NOT_REGISTERED, id="unregistered"),
        pytest.param("unregistered", "openvpn", 7, None, None, id="unknown-registration"),
        pytest.param(
            "not-domestic", "openvpn", None, None, Rule.NO_DOMESTIC_ENDPOINT, id="not-domestic"
        ),
        pytest.param("unconfirmed", "openvpn", None, None, Rule.UNCONFIRMED, id="unconfirmed"),
    ],
)
def test_implied_rule(
    verdict: str,
    protocol: str,
    registration: int | None,
    terms: RegistrationTerms | None,
    rule: Rule | None,
) -> None:
    found = implied_rule(
        verdict=verdict, protocol=protocol, registration_id=registration, terms=terms
    )
    assert found.rule is rule
    assert found.basis
    if rule is None and terms is not None and registration is not None and terms != MIXED:
        assert "other terms" in found.basis


T0 = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
SERIALS = [(4, T0), (5, T0 + dt.timedelta(hours=1)), (6, T0 + dt.timedelta(hours=2))]


@pytest.mark.parametrize(
    ("session", "serial", "at", "status", "registry_serial"),
    [
        pytest.param("s", 5, T0 + dt.timedelta(minutes=90), "current", 5, id="current"),
        pytest.param("s", 4, T0 + dt.timedelta(minutes=90), "behind", 5, id="behind"),
        pytest.param("s", 6, T0 + dt.timedelta(minutes=90), "current", 5, id="ahead-of-clock"),
        pytest.param("s", 4, T0 - dt.timedelta(minutes=1), "unknown", None, id="before-kept"),
        pytest.param("old", 9, T0 + dt.timedelta(hours=3), "other-session", None, id="session"),
        pytest.param(None, None, T0, "no-feed", None, id="no-feed"),
    ],
)
def test_serial_standing(
    session: str | None,
    serial: int | None,
    at: dt.datetime,
    status: str,
    registry_serial: int | None,
) -> None:
    standing = serial_standing(
        applied_session=session,
        applied_serial=serial,
        registry_session="s",
        serials=SERIALS,
        at=at,
    )
    assert (standing.status, standing.registry_serial) == (status, registry_serial)
    assert standing.describe()
