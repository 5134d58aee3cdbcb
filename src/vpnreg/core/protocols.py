"""The VPN protocols vpnreg recognises: one list for the classifier, the policy and the feed."""

from __future__ import annotations

from enum import StrEnum


class VpnProtocol(StrEnum):
    """What a flow's classification names; NONE means the flow is not a VPN.

    The member order of the VPN protocols is the byte order of per-protocol modes in signed feed
    documents (docs/adr/0001): append new protocols before NONE, never reorder.
    """

    OPENVPN = "openvpn"
    WIREGUARD = "wireguard"
    IPSEC = "ipsec"
    PPTP = "pptp"
    L2TP = "l2tp"
    SSTP = "sstp"
    OTHER_VPN = "other-vpn"
    NONE = "none"


#: The protocols a feed's enforcement mode may override, in signed byte order.
MODE_PROTOCOLS: tuple[VpnProtocol, ...] = tuple(p for p in VpnProtocol if p is not VpnProtocol.NONE)
