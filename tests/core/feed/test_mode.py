"""EnforcementMode: effective modes, canonical encoding, strict JSON."""

from __future__ import annotations

from typing import Any

import pytest

from vpnreg.core.feed import EnforcementMode, MalformedDocument, Mode, VpnProtocol


def test_new_registry_enforces_everywhere() -> None:
    mode = EnforcementMode.enforce_all()
    assert mode.default is Mode.ENFORCE
    assert dict(mode.per_protocol) == {}
    assert {mode.effective(p) for p in VpnProtocol} == {Mode.ENFORCE}


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        pytest.param("wireguard", Mode.DRY_RUN, id="override"),
        pytest.param("openvpn", Mode.ENFORCE, id="default"),
        pytest.param("other-vpn", Mode.ENFORCE, id="explicit-same-as-default"),
    ],
)
def test_effective(protocol: str, expected: Mode) -> None:
    mode = EnforcementMode(Mode.ENFORCE, {"wireguard": Mode.DRY_RUN, "other-vpn": Mode.ENFORCE})
    assert mode.effective(protocol) is expected


def test_unknown_protocol_is_an_error() -> None:
    with pytest.raises(ValueError, match="gre"):
        EnforcementMode.enforce_all().effective("gre")


def test_not_a_vpn_has_no_mode_of_its_own() -> None:
    with pytest.raises(ValueError, match="none"):
        EnforcementMode(Mode.ENFORCE, {"none": Mode.DRY_RUN})


def test_encoding_is_canonical_and_distinguishes_explicit_overrides() -> None:
    a = EnforcementMode(Mode.ENFORCE, {"sstp": Mode.DRY_RUN, "openvpn": Mode.DRY_RUN})
    b = EnforcementMode(Mode.ENFORCE, {"openvpn": Mode.DRY_RUN, "sstp": Mode.DRY_RUN})
    assert a == b
    assert a.encode() == bytes([1, 2, 0, 0, 0, 0, 2, 0])
    assert EnforcementMode.decode(a.encode()) == a
    explicit = EnforcementMode(Mode.ENFORCE, {"openvpn": Mode.ENFORCE})
    assert explicit != EnforcementMode.enforce_all()
    assert explicit.encode() != EnforcementMode.enforce_all().encode()


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param({"default": "enforce"}, id="missing-per-protocol"),
        pytest.param({"default": "block", "per_protocol": {}}, id="unknown-mode"),
        pytest.param(
            {"default": "enforce", "per_protocol": {"gre": "enforce"}}, id="unknown-proto"
        ),
        pytest.param(
            {"default": "enforce", "per_protocol": {"none": "dry-run"}}, id="not-a-vpn-proto"
        ),
        pytest.param({"default": "enforce", "per_protocol": []}, id="overrides-not-object"),
        pytest.param({"default": 1, "per_protocol": {}}, id="mode-not-text"),
        pytest.param({"default": "enforce", "per_protocol": {}, "x": 1}, id="extra-field"),
    ],
)
def test_json_refuses(obj: Any) -> None:
    with pytest.raises(MalformedDocument):
        EnforcementMode.from_json(obj)


def test_json_round_trip() -> None:
    mode = EnforcementMode(Mode.DRY_RUN, {"ipsec": Mode.ENFORCE})
    assert mode.to_json() == {"default": "dry-run", "per_protocol": {"ipsec": "enforce"}}
    assert EnforcementMode.from_json(mode.to_json()) == mode
