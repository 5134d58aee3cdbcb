"""The lab fixture itself: it leaves nothing behind, also when its setup fails midway."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lab.netlab import Lab, LabError

pytestmark = pytest.mark.lab


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_close_removes_namespaces_daemons_and_files() -> None:
    lab = Lab()
    try:
        lab.up()
        wg = lab.wireguard_up()
        assert lab.tunnel_works(wg, within_s=5)
        pids = [d.process.pid for d in lab.daemons]
        sockets = list(lab.sockets)
        assert all(s.exists() for s in sockets)
    finally:
        problems = lab.close()
    assert problems == []
    assert lab.prefix not in namespaces()
    assert not lab.dir.exists()
    assert not any(s.exists() for s in sockets)
    for pid in pids:  # reaped children: the PIDs are gone (or reused by someone else entirely)
        assert lab.tag not in cmdline(pid)
    assert lab.close() == []  # closing twice is a no-op


def test_failure_midway_tears_everything_down() -> None:
    lab = Lab()
    started: list[int] = []

    def broken_setup() -> None:
        with lab:
            started.append(lab.spawn("sleeper", lab.ns_b, ["sleep", "60"]).process.pid)
            lab.inside(lab.ns_gw, "ip", "link", "set", "no-such-device", "up")

    with pytest.raises(LabError, match="failed"):
        broken_setup()
    assert "sleep" not in cmdline(started[0])
    assert lab.prefix not in namespaces()
    assert not lab.dir.exists()
    assert lab.daemons == []
