"""Why a prefix is refused: the reason codes and the error that carries one."""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """One machine-readable reason per refusal; the values are stable (stored, sent to clients)."""

    malformed = "malformed"
    host_bits_set = "host_bits_set"
    private = "private"
    loopback = "loopback"
    link_local = "link_local"
    multicast = "multicast"
    cgnat = "cgnat"
    unspecified = "unspecified"
    broadcast = "broadcast"
    documentation = "documentation"
    reserved = "reserved"
    special_purpose = "special_purpose"
    too_broad = "too_broad"


class PrefixError(ValueError):
    """A text that is not an acceptable prefix or address.

    `code` says why, `value` is the text as given, `normalised` is the form the caller probably
    meant (only for host_bits_set); str(err) is a one-line message for a human.
    """

    def __init__(
        self, code: ReasonCode, value: str, message: str, *, normalised: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.value = value
        self.normalised = normalised
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only `normalised` would be lost by the default exception pickling.
        return (_rebuild, (self.code, self.value, self.message, self.normalised))


def _rebuild(code: ReasonCode, value: str, message: str, normalised: str | None) -> PrefixError:
    return PrefixError(code, value, message, normalised=normalised)
