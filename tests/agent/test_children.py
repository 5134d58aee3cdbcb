"""Children forked by the agent (NFStream's meters) die with it, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.lab.netlab import wait_until

#: A parent that forks a sleeping child (as NFStream forks a meter), says both pids, and waits.
PARENT = """
import os, sys, time
from vpnreg.agent.children import die_with_parent
if sys.argv[1] == "hooked":
    assert die_with_parent()
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
print(os.getpid(), child, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(("mode", "survives"), [("hooked", False), ("plain", True)])
def test_a_forked_child_dies_with_a_sigkilled_parent(mode: str, survives: bool) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        _, child = map(int, parent.stdout.readline().split())
        try:
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=5)
            # the plain case shows what the hook prevents: an orphan left running
            assert wait_until(lambda: alive(child) is survives, 5), (mode, alive(child))
        finally:
            if alive(child):
                os.kill(child, signal.SIGKILL)


#: A parent with a SIGTERM handler that only records the request (as the agent's does) forks a
#: child that loops in a blocking call (as a meter reads a quiet link); the child says its pid.
HANDLER_PARENT = """
import ctypes, os, signal, sys, time
from vpnreg.agent.children import die_with_parent
signal.signal(signal.SIGTERM, lambda _s, _f: None)
if sys.argv[1] == "hooked":
    assert die_with_parent()
child = os.fork()
if child == 0:
    # the child says its pid itself: its fork hooks have run by then, so the test's SIGTERM
    # cannot arrive before the child's handlers are what they will be
    print(os.getpid(), flush=True)
    libc = ctypes.CDLL(None)
    while True:
        libc.sleep(60)
time.sleep(60)
"""


@pytest.mark.parametrize(("mode", "survives"), [("hooked", False), ("plain", True)])
def test_a_forked_child_ends_on_sigterm_whatever_handler_the_parent_had(
    mode: str, survives: bool
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HANDLER_PARENT, mode], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        try:
            os.kill(child, signal.SIGTERM)
            # plain: the inherited handler swallows the request and the child loops on
            assert wait_until(lambda: alive(child) is survives, 3), (mode, alive(child))
        finally:
            for pid in (child, parent.pid):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
