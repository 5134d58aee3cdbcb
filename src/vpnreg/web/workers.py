"""`vpnreg serve --workers N`: N server processes forked from the serve process (ADR 0016).

The serve process binds the listening socket, then forks N workers; each builds its own app
(its own database engines, feed publisher and lease) and serves the inherited socket with
uvicorn, so the kernel hands each new connection to one of them. The serve process only
supervises:

- a worker that exits (a crash, a kill) is forked again in its place, at most once a second,
  while the others go on serving;
- SIGTERM or SIGINT to the serve process stops every worker (one SIGTERM each: uvicorn finishes
  the requests in progress) and then the serve process itself; the workers have their own
  process group, so a Ctrl-C at a terminal does not signal them twice;
- a worker whose serve process dies, even by SIGKILL, receives SIGTERM from the kernel
  (PR_SET_PDEATHSIG), so no worker outlives it.

Forking (not uvicorn's own multi-process mode, which spawns fresh interpreters and pickles its
configuration) keeps the protocol class bound to the settings' limits and settings made at the
start, such as a development secret key, the same in every worker. Nothing may start a thread
or open a connection in the serve process before it forks.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

__all__ = ["bind_socket", "run_workers"]

_LOG = logging.getLogger(__name__)
#: A worker that exits sooner than this after its start is forked again only after this long,
#: so one that cannot start does not spin.
_RESTART_PAUSE_S = 1.0
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def bind_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on `host`:`port`, to be shared by the workers."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(0)


def _worker(sock: socket.socket, serve: Callable[[socket.socket], None], parent: int) -> None:
    """The forked child: serve until stopped, then leave without returning into the parent's
    code."""
    code = 0
    try:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        # Its own process group: a Ctrl-C at the terminal reaches the serve process alone, which
        # passes one SIGTERM on (a second signal would make uvicorn drop requests in progress).
        os.setpgid(0, 0)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        _die_with_parent(parent)
        serve(sock)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_workers(count: int, sock: socket.socket, serve: Callable[[socket.socket], None]) -> None:
    """Fork `count` workers that each run `serve(sock)`, and supervise them (see the module
    docstring) until a stop signal; returns once every worker has exited."""
    parent = os.getpid()
    workers: dict[int, tuple[int, float]] = {}  # pid: (slot, start time)
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def spawn(slot: int) -> None:
        # Blocked while forking: a stop that arrives now finds the new worker in `workers`.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                _worker(sock, serve, parent)
            workers[pid] = (slot, time.monotonic())
            _LOG.info("worker %d started (pid %d)", slot, pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, stop)
    for slot in range(count):
        spawn(slot)
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:  # pragma: no cover - every worker is in `workers`
            break
        found = workers.pop(pid, None)
        if found is None or stopping:
            continue
        slot, started = found
        _LOG.warning(
            "worker %d (pid %d) exited (%s); starting another",
            slot,
            pid,
            _describe(status),
        )
        left = started + _RESTART_PAUSE_S - time.monotonic()
        if left > 0:
            time.sleep(left)
        if not stopping:
            spawn(slot)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
