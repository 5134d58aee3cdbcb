"""Request shapes shared by the registry's two front doors, the JSON API and the CLI.

Pydantic only: no SQLAlchemy or FastAPI, so the CLI can check a file against the same shape the
API documents without loading the web app. What a prefix means is checked by the services.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

#: The most prefixes one application may ask for.
MAX_PREFIXES = 256

#: A VPN protocol an application may limit itself to (core.protocols.MODE_PROTOCOLS).
ProtocolName = Literal["openvpn", "wireguard", "ipsec", "pptp", "l2tp", "sstp", "other-vpn"]
#: The ISP's account id of a subscriber-bound application's line (core.bindings checks it).
SubscriberId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+\-]{0,63}$",
        examples=["SUB-123"],
        description="The ISP's account id of the line: 1 to 64 letters, digits or ._:@/+- "
        "(starting with a letter or digit)",
    ),
]
#: The VPN protocols an application uses; empty (or left out) means any.
Protocols = Annotated[
    list[ProtocolName],
    Field(
        default_factory=list,
        max_length=7,
        description="The VPN protocols the registration allows (empty: any)",
    ),
]


class PrefixIn(BaseModel):
    """One prefix to register and the peers it is limited to (empty: any peer)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(max_length=64, examples=["203.0.113.0/24"])
    peers: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
