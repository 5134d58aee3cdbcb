"""Which prefixes may be registered: the policy values and the refusal decision."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vpnreg.core.ipspace.addresses import Network, bounds, parse_prefix
from vpnreg.core.ipspace.reasons import PrefixError, ReasonCode
from vpnreg.core.ipspace.special import SPECIAL_RANGES, SpecialRange

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@dataclass(frozen=True)
class PrefixPolicy:
    """Limits on registrable prefixes.

    A prefix shorter than max_v4 / max_v6 is too broad (/21 refused, /22 accepted for IPv4 by
    default). allow_documentation lets the documentation ranges through (test deployments).
    """

    allow_documentation: bool = False
    max_v4: int = 22
    max_v6: int = 40

    def __post_init__(self) -> None:
        if not 0 <= self.max_v4 <= 32:
            raise ValueError(f"max_v4 must be within 0..32, not {self.max_v4}")
        if not 0 <= self.max_v6 <= 128:
            raise ValueError(f"max_v6 must be within 0..128, not {self.max_v6}")


#: Each special range with its version and first and last address as integers: the checks
#: below compare integers (a registry checks thousands of binding addresses a second), which
#: for CIDR blocks is the same as ipaddress's overlaps() and subnet_of().
_SPECIAL_BOUNDS: tuple[tuple[int, int, int, SpecialRange], ...] = tuple(
    (special.network.version, *bounds(special.network), special) for special in SPECIAL_RANGES
)


def _applicable(network: Network, policy: PrefixPolicy) -> list[tuple[int, int, SpecialRange]]:
    """The special ranges `policy` refuses that overlap `network`, with their bounds."""
    version = network.version
    first, last = bounds(network)
    return [
        (low, high, special)
        for v, low, high, special in _SPECIAL_BOUNDS
        if v == version
        and low <= last
        and first <= high
        and not (policy.allow_documentation and special.code is ReasonCode.documentation)
    ]


def _refusal(network: Network, policy: PrefixPolicy) -> tuple[ReasonCode, str] | None:
    """The reason and a one-line message, or None when the prefix may be registered.

    Order matters for the message a user sees: a prefix lying inside a special range is named
    by the most specific such range (10.1.0.0/16 is "private", not "too broad"); then a prefix
    shorter than the policy allows is too broad (0.0.0.0/0 is "too broad" rather than
    "unspecified"); last, a prefix that merely overlaps special ranges is named by the first of
    them in address order (a /22 holding 192.0.2.0/24).
    """
    overlapping = _applicable(network, policy)
    first, last = bounds(network)
    containing = [s for low, high, s in overlapping if low <= first and last <= high]
    if containing:
        special = max(containing, key=lambda s: s.network.prefixlen)
        message = f"{network} lies in {special.network} ({special.name})"
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            mapped = network.network_address.ipv4_mapped
            v4 = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
            message += f"; register the IPv4 prefix {v4} instead"
        return special.code, message
    limit = policy.max_v4 if network.version == 4 else policy.max_v6
    if network.prefixlen < limit:
        return ReasonCode.too_broad, (
            f"{network} is too broad: IPv{network.version} prefixes must be /{limit} or longer"
        )
    if overlapping:
        special = min(
            (s for _, _, s in overlapping),
            key=lambda s: (s.network.network_address, s.network.prefixlen),
        )
        return special.code, f"{network} overlaps {special.network} ({special.name})"
    return None


def refusal_reason(network: Network, policy: PrefixPolicy) -> ReasonCode | None:
    """Why `network` may not be registered under `policy`, or None when it may."""
    refusal = _refusal(network, policy)
    return None if refusal is None else refusal[0]


def validate_prefix(text: str, policy: PrefixPolicy) -> Network:
    """Parse `text` strictly and apply `policy`; raises PrefixError with the reason."""
    network = parse_prefix(text)
    refusal = _refusal(network, policy)
    if refusal is not None:
        code, message = refusal
        raise PrefixError(code, text, message)
    return network
