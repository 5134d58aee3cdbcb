"""The signed enforcement mode: enforce or dry-run, globally and per VPN protocol."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from vpnreg.core.feed.errors import MalformedDocument
from vpnreg.core.protocols import MODE_PROTOCOLS, VpnProtocol


class Mode(StrEnum):
    ENFORCE = "enforce"
    DRY_RUN = "dry-run"


#: Byte values of a mode in the signed encoding; 0 means "no override" for a protocol slot.
_MODE_BYTE = {Mode.ENFORCE: 1, Mode.DRY_RUN: 2}
_BYTE_MODE = {v: k for k, v in _MODE_BYTE.items()}

#: Length of EnforcementMode.encode(): the default byte, then one byte per protocol.
MODE_ENCODED_SIZE = 1 + len(MODE_PROTOCOLS)


class EnforcementMode:
    """A default mode and per-protocol overrides; immutable, compared by value."""

    __slots__ = ("_default", "_per_protocol")

    def __init__(self, default: Mode, per_protocol: Mapping[str, Mode] | None = None) -> None:
        overrides: dict[VpnProtocol, Mode] = {}
        for name, mode in (per_protocol or {}).items():
            overrides[mode_protocol(name)] = Mode(mode)
        ordered = {p: overrides[p] for p in MODE_PROTOCOLS if p in overrides}
        self._default = Mode(default)
        self._per_protocol: Mapping[VpnProtocol, Mode] = MappingProxyType(ordered)

    @classmethod
    def enforce_all(cls) -> EnforcementMode:
        """What a new registry publishes: enforce everywhere, no overrides."""
        return cls(Mode.ENFORCE)

    @property
    def default(self) -> Mode:
        return self._default

    @property
    def per_protocol(self) -> Mapping[VpnProtocol, Mode]:
        return self._per_protocol

    def effective(self, protocol: str) -> Mode:
        """The mode that applies to `protocol`; an unknown protocol name is a ValueError."""
        return self._per_protocol.get(VpnProtocol(protocol), self._default)

    def encode(self) -> bytes:
        """Canonical bytes: default mode, then one byte per protocol in MODE_PROTOCOLS order."""
        slots = [
            _MODE_BYTE[self._per_protocol[p]] if p in self._per_protocol else 0
            for p in MODE_PROTOCOLS
        ]
        return bytes([_MODE_BYTE[self._default], *slots])

    @classmethod
    def decode(cls, data: bytes) -> EnforcementMode:
        if len(data) != MODE_ENCODED_SIZE or data[0] not in _BYTE_MODE:
            raise ValueError("not an encoded enforcement mode")
        overrides: dict[str, Mode] = {}
        for proto, byte in zip(MODE_PROTOCOLS, data[1:], strict=True):
            if byte == 0:
                continue
            if byte not in _BYTE_MODE:
                raise ValueError("not an encoded enforcement mode")
            overrides[proto] = _BYTE_MODE[byte]
        return cls(_BYTE_MODE[data[0]], overrides)

    def to_json(self) -> dict[str, Any]:
        return {
            "default": str(self._default),
            "per_protocol": {str(p): str(m) for p, m in self._per_protocol.items()},
        }

    @classmethod
    def from_json(cls, obj: object) -> EnforcementMode:
        """Parse the JSON form strictly; anything unexpected is a MalformedDocument."""
        if not isinstance(obj, dict) or set(obj) != {"default", "per_protocol"}:
            raise MalformedDocument("mode must be an object with default and per_protocol")
        overrides = obj["per_protocol"]
        if not isinstance(overrides, dict):
            raise MalformedDocument("mode.per_protocol must be an object")
        try:
            return cls(_mode(obj["default"]), {_proto(k): _mode(v) for k, v in overrides.items()})
        except ValueError as exc:
            raise MalformedDocument(f"mode: {exc}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnforcementMode):
            return NotImplemented
        return self.encode() == other.encode()

    def __hash__(self) -> int:
        return hash(self.encode())

    def __repr__(self) -> str:
        overrides = {str(p): str(m) for p, m in self._per_protocol.items()}
        return f"EnforcementMode({str(self._default)!r}, {overrides!r})"


def _mode(value: object) -> Mode:
    if not isinstance(value, str):
        raise ValueError("a mode must be a string")
    return Mode(value)


def _proto(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a protocol must be a string")
    return str(mode_protocol(value))


def mode_protocol(name: str) -> VpnProtocol:
    """The VPN protocol called `name`; "none" (not a VPN) has no mode of its own."""
    protocol = VpnProtocol(name)
    if protocol not in MODE_PROTOCOLS:
        raise ValueError(f"{name!r} is not a VPN protocol a mode can be set for")
    return protocol
