"""NFStream's plugin mode without its per-packet cost where the agent's plugin needs nothing.

With any plugin, NFStream's meter copies every C flow field (and, until detection ends, seven
decoded strings) into Python and builds a Python packet with a copy of its bytes, for every
packet of every flow: that alone halves its packets per second. The agent's plugin
(`vpnreg.agent.flows.VpnFeaturePlugin`) needs much less: the bytes of a flow's first
`INSPECT_PACKETS` packets, the packet count and nDPI's detection flag until the hand-over, and
nothing at all for the rest of a connection (its continuation flow). `LeanFlow` is NFStream's
flow class with an `update` that does just that; `expire` is NFStream's own, which copies every
field before the plugin's `on_expire`, so the records handed over are the same (a test compares
them with plain plugin mode on the corpus).

`install()` swaps the class into `nfstream.meter` (as `vpnreg.agent.livecapture` wraps its
capture set-up) before the meters fork. It checks the NFStream version and the signature it was
written against, and leaves NFStream alone on any other version, where plain plugin mode gives
the same records, only slower.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import nfstream
from nfstream.flow import NFlow, pythonize_packet

#: The NFStream releases whose meter and flow internals this module was checked against.
SUPPORTED_VERSIONS = frozenset({"6.6.0"})
_UPDATE_PARAMETERS = (
    "self",
    "packet",
    "idle_timeout",
    "active_timeout",
    "ffi",
    "lib",
    "udps",
    "sync",
    "accounting_mode",
    "n_dissections",
    "statistics",
    "splt",
    "dissector",
)


class LeanFlow(NFlow):  # type: ignore[misc]
    """An NFStream flow whose per-packet update asks the agent's plugin what it needs."""

    __slots__ = ()

    def update(
        self,
        packet: Any,
        idle_timeout: int,
        active_timeout: int,
        ffi: Any,
        lib: Any,
        udps: Any,
        sync: bool,
        accounting_mode: int,
        n_dissections: int,
        statistics: bool,
        splt: int,
        dissector: Any,
    ) -> Any:
        plugin = udps[0] if sync and len(udps) == 1 else None
        if plugin is None or not hasattr(plugin, "lean_update"):
            return super().update(
                packet,
                idle_timeout,
                active_timeout,
                ffi,
                lib,
                udps,
                sync,
                accounting_mode,
                n_dissections,
                statistics,
                splt,
                dissector,
            )
        c = self._C
        ret = lib.meter_update_flow(
            c,
            packet,
            idle_timeout,
            active_timeout,
            accounting_mode,
            statistics,
            splt,
            n_dissections,
            dissector,
            sync,
        )
        if ret > 0:  # idle (1) or active (2) timeout, as in NFStream
            self.expiration_id = ret - 1  # type: ignore[misc]  # a slot of NFlow
            return self.expire(udps, sync, n_dissections, statistics, splt, ffi, lib, dissector)
        u = self.udps
        if u.continuation:
            return None
        self.bidirectional_packets = c.bidirectional_packets  # type: ignore[misc]  # ditto
        wants_bytes: bool = plugin.lean_update(self, packet.time, c.detection_completed)
        if wants_bytes:
            plugin.on_update(pythonize_packet(packet, ffi, self), self)
        if self.expiration_id == -1:
            return self.expire(udps, sync, n_dissections, statistics, splt, ffi, lib, dissector)
        return None


def supported() -> bool:
    """True when the installed NFStream is one `LeanFlow` was written for."""
    if getattr(nfstream, "__version__", None) not in SUPPORTED_VERSIONS:
        return False
    update: Callable[..., Any] = NFlow.update
    return tuple(inspect.signature(update).parameters) == _UPDATE_PARAMETERS


def install() -> bool:
    """Make NFStream's meters build `LeanFlow`s; True if in place. Call before iterating."""
    from nfstream import meter

    if meter.NFlow is LeanFlow:
        return True
    if not supported():
        return False
    meter.NFlow = LeanFlow
    return True


def uninstall() -> None:
    """Give NFStream its own flow class back (tests compare both)."""
    from nfstream import meter

    meter.NFlow = NFlow
