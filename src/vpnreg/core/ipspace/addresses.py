"""Address and prefix types, and the strict parsers that turn user text into them."""

from __future__ import annotations

import ipaddress
import re
from typing import TypeAlias

from vpnreg.core.excerpt import quoted
from vpnreg.core.ipspace.reasons import PrefixError, ReasonCode

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

# Only CIDR notation with a plain decimal length: netmask forms ("/255.255.255.0"), leading
# zeros ("/024") and signs are refused so that what the user typed is exactly what is stored.
_PREFIX_RE = re.compile(r"^(?P<address>[^/\s]+)(?:/(?P<length>0|[1-9][0-9]{0,2}))?$")
_ADDRESS_RE = re.compile(r"^[0-9A-Fa-f:.]+$")


def _malformed(text: str, why: str) -> PrefixError:
    return PrefixError(ReasonCode.malformed, text, f"{quoted(text)} is not a valid {why}")


def parse_address(text: str) -> Address:
    """Parse one IPv4 or IPv6 address; surrounding whitespace is ignored, nothing else is."""
    if not isinstance(text, str):
        raise _malformed(str(text), "IP address")
    stripped = text.strip()
    # ipaddress accepts IPv6 scope ids ("fe80::1%eth0"); they have no meaning in a registry.
    if not _ADDRESS_RE.match(stripped):
        raise _malformed(text, "IP address")
    try:
        return ipaddress.ip_address(stripped)
    except ValueError:
        raise _malformed(text, "IP address") from None


def parse_prefix(text: str) -> Network:
    """Parse a prefix in CIDR notation; a bare address means a /32 or a /128.

    Strict: a prefix with host bits set is refused (host_bits_set) with the network the user
    probably meant in `normalised`; it is never silently changed.
    """
    if not isinstance(text, str):
        raise _malformed(str(text), "IP prefix")
    stripped = text.strip()
    match = _PREFIX_RE.match(stripped)
    if match is None:
        raise _malformed(text, "IP prefix")
    if not _ADDRESS_RE.match(match["address"]):
        raise _malformed(text, "IP prefix")
    try:
        address = ipaddress.ip_address(match["address"])
    except ValueError:
        raise _malformed(text, "IP prefix") from None
    length = address.max_prefixlen if match["length"] is None else int(match["length"])
    if length > address.max_prefixlen:
        raise PrefixError(
            ReasonCode.malformed,
            text,
            f"{quoted(text)} is not a valid IP prefix: IPv{address.version} prefix lengths go up "
            f"to /{address.max_prefixlen}",
        )
    network = ipaddress.ip_network((address, length), strict=False)
    if network.network_address != address:
        raise PrefixError(
            ReasonCode.host_bits_set,
            text,
            f"{stripped} has host bits set; did you mean {network}?",
            normalised=str(network),
        )
    return network


def bounds(network: Network) -> tuple[int, int]:
    """First and last address of a network as integers."""
    first = int(network.network_address)
    return first, first | ((1 << (network.max_prefixlen - network.prefixlen)) - 1)
