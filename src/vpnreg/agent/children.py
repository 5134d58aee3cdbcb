"""Processes the agent forks (NFStream's meters) die with it, however it dies.

NFStream forks its meter processes from the thread that iterates the flows. When the agent is
stopped normally it ends them; killed with SIGKILL, it cannot, and the meters used to live on as
orphans, still capturing on the interface (found by the lab's SIGKILL test: the gateway's network
namespace held a process nobody had started). `die_with_parent` makes every child forked from
now on ask the kernel for SIGKILL when the thread that forked it ends (PR_SET_PDEATHSIG), and
exit at once if that already happened between the fork and the request.

A child also gets the default SIGTERM and SIGINT actions back. It inherited the agent's handlers,
which only set an event in the agent's copy; a meter blocked in a read on a quiet link (the
conntrack capture's link carries nothing between new connections) then never returned to run
them, and NFStream's terminate-and-join on a stop waited forever.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

#: prctl(2) option: the signal a process gets when its parent thread ends.
PR_SET_PDEATHSIG = 1

_forker: int | None = None
_installed = False


def _remember_forker() -> None:
    global _forker
    _forker = os.getpid()


def _in_child() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # best effort: the child runs as before
    if os.getppid() != _forker:
        os._exit(0)  # the parent died before the request took effect


def die_with_parent() -> bool:
    """Install the fork hooks once per process (Linux only); True when they are in place."""
    global _installed
    if not sys.platform.startswith("linux"):
        return False
    if not _installed:
        os.register_at_fork(before=_remember_forker, after_in_child=_in_child)
        _installed = True
    return True
