"""Live captures without libpcap's batching: immediate mode on NFStream's live pcap handles.

NFStream's C engine opens a live capture with a fixed 1000 ms buffer timeout and without
immediate mode. On Linux libpcap then uses TPACKET_V3, where the kernel hands packets over a
buffer block at a time: a block is retired when it fills or when the timeout expires. On a quiet
link the packet that decides a tunnel waits up to a second before the meter sees it (the lab
measured ~700 ms from a tunnel's first packet to its block, against 60-75 ms on a busy link).

NFStream does not expose the setting, but its engine (`_lib_engine`) links libpcap statically
and exports `pcap_set_immediate_mode`. `install_immediate_mode` wraps the `setup_capture` that
NFStream's meter calls (`nfstream.meter.setup_capture`, looked up at call time in the meter
process, which is forked from ours and so inherits the wrapper): for a live source, once the
handle is created and before NFStream activates it, the wrapper turns immediate mode on through
ctypes on that same shared object. libpcap then delivers every packet as it arrives; the 1000 ms
timeout remains only the longest wait of an idle read, which is when NFStream expires idle flows,
as before. Capture files are never touched. Any failure logs one warning and leaves NFStream's
default in place.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

_LOG = logging.getLogger(__name__)

#: nfstream.utils.NFMode.INTERFACE: the `mode` NFStream passes for a live interface.
INTERFACE_MODE = 1

#: pcap_set_immediate_mode(pcap_t *, int) -> int (0 on success).
SetImmediate = Callable[[int, int], int]

#: The wrapper this process installed, so that a second call does not wrap it again.
_installed: Callable[..., Any] | None = None


def engine_set_immediate() -> SetImmediate | None:
    """`pcap_set_immediate_mode` from NFStream's engine, or None (one warning) if unavailable."""
    try:
        import _lib_engine  # type: ignore[import-not-found]  # NFStream's cffi engine

        function = ctypes.CDLL(_lib_engine.__file__).pcap_set_immediate_mode
    except (ImportError, OSError, AttributeError) as exc:
        _LOG.warning("live capture keeps NFStream's 1000 ms buffering: %s", exc)
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def immediate_setup_capture(
    original: Callable[..., Any], set_immediate: SetImmediate
) -> Callable[..., Any]:
    """`original` (NFStream's `setup_capture`), turning immediate mode on for live captures.

    The handle comes back unchanged in every case; if the call fails, NFStream's buffering stays.
    """
    signature = inspect.signature(original)

    @functools.wraps(original)
    def setup_capture(*args: Any, **kwargs: Any) -> Any:
        capture = original(*args, **kwargs)
        try:
            bound = signature.bind(*args, **kwargs)
            ffi, mode = bound.arguments["ffi"], bound.arguments["mode"]
            if int(mode) != INTERFACE_MODE or capture is None or capture == ffi.NULL:
                return capture
            status = set_immediate(int(ffi.cast("uintptr_t", capture)), 1)
        except Exception as exc:  # never let the tweak break the capture
            _LOG.warning("live capture keeps NFStream's 1000 ms buffering: %r", exc)
            return capture
        if status != 0:
            _LOG.warning(
                "live capture keeps NFStream's 1000 ms buffering: "
                "pcap_set_immediate_mode returned %d",
                status,
            )
        return capture

    return setup_capture


def install_immediate_mode(
    *, loader: Callable[[], SetImmediate | None] = engine_set_immediate
) -> bool:
    """Wrap `nfstream.meter.setup_capture` once per process; True if the wrapper is in place.

    Call it before the NFStreamer starts iterating (its meter processes fork then).
    """
    global _installed
    from nfstream import meter

    if _installed is not None and meter.setup_capture is _installed:
        return True
    set_immediate = loader()
    if set_immediate is None:
        return False
    _installed = immediate_setup_capture(meter.setup_capture, set_immediate)
    meter.setup_capture = _installed
    return True
