"""`vpnreg serve`'s access log: on by default, off with --no-access-log or
VPNREG_HTTP_ACCESS_LOG=0, with one process as with workers (deploy/vpnreg-serve.service turns
it off: nginx in front keeps its own)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.concurrency.server import prepare, serve_process

CASES = [
    pytest.param((), {}, True, id="default"),
    pytest.param(("--no-access-log",), {}, False, id="flag"),
    pytest.param(("--no-access-log", "--workers", "2"), {}, False, id="flag-workers"),
    pytest.param((), {"VPNREG_HTTP_ACCESS_LOG": "0"}, False, id="setting"),
    pytest.param(("--access-log",), {"VPNREG_HTTP_ACCESS_LOG": "0"}, True, id="flag-over-setting"),
]


@pytest.mark.parametrize(("options", "env", "logged"), CASES)
def test_the_access_log_follows_the_flag_and_the_setting(
    tmp_path: Path, options: tuple[str, ...], env: dict[str, str], logged: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    prepare(url, 0)
    with serve_process(url, tmp_path, *options, env=env) as (base, _process):
        for _ in range(3):
            # 404: nothing is registered; the request is what the log is about
            assert httpx.get(f"{base}/api/v1/ip/192.0.2.1", timeout=10).status_code == 404
    log = (tmp_path / "server.log").read_text()
    assert ("GET /api/v1/ip/192.0.2.1 HTTP/1.1" in log) is logged, log
    assert "Application startup complete" in log  # the server's own lines stay
