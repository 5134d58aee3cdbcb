"""`vpnreg serve --workers N` refuses what it cannot run with one line and an exit code, before
forking any worker."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.console import VPNREG


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VPNREG_")}
    base |= {"VPNREG_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
             "VPNREG_FEED_KEY": str(tmp_path / "feed.key"), **env}  # fmt: skip
    return subprocess.run(
        [str(VPNREG), "serve", "--host", "127.0.0.1", *args],
        env=base, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_zero_workers_is_a_usage_error(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--workers", "0")
    assert done.returncode == 2 and "--workers" in done.stderr, done.stderr


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, "--port", str(port), "--workers", "2")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"vpnreg: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in done.stderr


def test_production_without_a_feed_key_is_refused_before_forking(tmp_path: Path) -> None:
    done = _serve(
        tmp_path, "--port", "0", "--workers", "2",
        VPNREG_ENV="production", VPNREG_SECRET_KEY="s" * 40,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [f"vpnreg: feed key {tmp_path / 'feed.key'} does not exist"]
