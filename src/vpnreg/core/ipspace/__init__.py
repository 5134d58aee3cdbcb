"""IP address space: strict parsing, the registration policy, set algebra and fast lookup."""

from __future__ import annotations

from vpnreg.core.ipspace.addresses import Address, Network, parse_address, parse_prefix
from vpnreg.core.ipspace.algebra import (
    collapse,
    contains,
    difference,
    overlapping_pairs,
    overlaps,
)
from vpnreg.core.ipspace.lookup import PrefixLookup
from vpnreg.core.ipspace.policy import PrefixPolicy, refusal_reason, validate_prefix
from vpnreg.core.ipspace.reasons import PrefixError, ReasonCode

__all__ = [
    "Address",
    "Network",
    "PrefixError",
    "PrefixLookup",
    "PrefixPolicy",
    "ReasonCode",
    "collapse",
    "contains",
    "difference",
    "overlapping_pairs",
    "overlaps",
    "parse_address",
    "parse_prefix",
    "refusal_reason",
    "validate_prefix",
]
