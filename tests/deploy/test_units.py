"""The systemd units of deploy/ and the gateway's example configuration.

`systemd-analyze verify` (Debian package systemd) checks unit files without a running systemd:
this container has no systemd as PID 1, and verify still parses every unit, loads the units it
is given and checks each Exec line's binary. It refuses a binary that does not exist, so the
units are rendered first with /opt/vpnreg/.venv/bin/vpnreg replaced by this checkout's vpnreg
(`--root=DIR` does not help: it then looks for every dependency, sysinit.target included,
under DIR). Unknown keys and bad values only warn on stderr with exit code 0, so the test
requires an empty stderr as well. `--man=no`: the Documentation= pages are not looked up.

The gateway unit runs the agent as user vpnreg with two ambient capabilities; setpriv gives
user nobody the same two and checks that nft and an AF_PACKET socket work with them and fail
without them (this needs root, as the lab tests do).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.console import VPNREG
from tests.deploy.rendering import (
    DEPLOY,
    GATEWAY_EXAMPLE,
    NGINX_CONFIG,
    UNITS,
    render_unit,
    unit_command_lines,
)
from vpnreg.agent import config as gateway_config

SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
SETPRIV = "/usr/bin/setpriv"
NFT = "/usr/sbin/nft"
#: What the agent does with its capabilities: opens an AF_PACKET socket (capture) and runs nft.
_OPEN_PACKET_SOCKET = "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()"


def _analyzer() -> str:
    if shutil.which(SYSTEMD_ANALYZE) is None:
        pytest.fail(f"{SYSTEMD_ANALYZE} is missing: install the Debian package systemd")
    return SYSTEMD_ANALYZE


def test_every_file_in_deploy_is_exercised() -> None:
    # This module checks the units and the example; test_nginx.py the nginx configuration.
    exercised = {*UNITS, GATEWAY_EXAMPLE, NGINX_CONFIG}
    present = {p for p in DEPLOY.rglob("*") if p.is_file()}
    assert present == exercised
    assert {p.name for p in UNITS} >= {
        "vpnreg-serve.service",
        "vpnreg-feed-publish.service",
        "vpnreg-feed-publish.timer",
        "vpnreg-gateway.service",
    }


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    rendered = [str(render_unit(unit, tmp_path, VPNREG)) for unit in UNITS]
    # All at once: a timer is checked against the service it starts.
    result = subprocess.run(
        [_analyzer(), "verify", "--man=no", *rendered],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    # The check above can fail: a misspelt key and a missing binary are reported.
    unit = render_unit(DEPLOY / "vpnreg-serve.service", tmp_path, VPNREG)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    result = subprocess.run(
        [_analyzer(), "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Unknown key 'NoNewPrivilege'" in result.stderr
    missing = tmp_path / "missing"
    unit = render_unit(DEPLOY / "vpnreg-serve.service", missing, tmp_path / "no-vpnreg")
    result = subprocess.run(
        [_analyzer(), "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "is not executable" in result.stderr


@pytest.mark.parametrize("unit", [u for u in UNITS if unit_command_lines(u)], ids=lambda u: u.name)
def test_the_units_vpnreg_command_lines_parse(unit: Path) -> None:
    # --help after the real arguments: click parses them all first, so an unknown command or
    # option fails (exit 2) before the help is shown.
    for words in unit_command_lines(unit):
        result = subprocess.run(
            [str(VPNREG), *words, "--help"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (words, result.stderr)
        assert result.stdout.startswith(f"Usage: vpnreg {words[0]}"), result.stdout


def test_a_wrong_option_in_a_command_line_would_be_caught() -> None:
    result = subprocess.run(
        [str(VPNREG), "serve", "--hots", "127.0.0.1", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "No such option" in result.stderr


def test_the_gateway_example_loads_with_the_agents_loader() -> None:
    loaded = gateway_config.load(GATEWAY_EXAMPLE, {})
    assert loaded.interface == "eth1" and loaded.feed_is_url
    # It names the paths the gateway unit gives the agent (StateDirectory=, LogsDirectory=).
    unit = (DEPLOY / "vpnreg-gateway.service").read_text()
    assert str(loaded.state_dir) == "/var/lib/vpnreg/gateway"
    assert "StateDirectory=vpnreg/gateway" in unit
    assert loaded.verdicts is not None and loaded.verdicts.parent == Path("/var/log/vpnreg")
    assert "LogsDirectory=vpnreg" in unit
    assert "--config /etc/vpnreg/gateway.toml" in unit


def test_the_gateway_example_with_the_static_feed_loads() -> None:
    # The commented alternative: the static feed's notification URL.
    text = GATEWAY_EXAMPLE.read_text()
    static = '"https://feed.example.org/notification.json"'
    assert static in text
    values = gateway_config.read_file(GATEWAY_EXAMPLE) | {"feed": static.strip('"')}
    assert gateway_config.resolve(values, {}).feed.endswith("/notification.json")


def _unit_capabilities(unit: Path) -> list[str]:
    values = {
        key: value.split()
        for key, _, value in (line.partition("=") for line in unit.read_text().splitlines())
        if key in {"CapabilityBoundingSet", "AmbientCapabilities"}
    }
    assert values["CapabilityBoundingSet"] == values["AmbientCapabilities"]
    return [c.removeprefix("CAP_").lower() for c in values["AmbientCapabilities"]]


def test_the_gateway_units_capabilities_let_user_nobody_capture_and_run_nft() -> None:
    # The unit runs the agent as an ordinary user with ambient capabilities; setpriv gives user
    # nobody exactly those (the test runs as root, as the lab tests do), then without them.
    for tool in (SETPRIV, NFT):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (Debian packages util-linux, nftables)")
    caps = ",".join(f"+{c}" for c in _unit_capabilities(DEPLOY / "vpnreg-gateway.service"))
    nobody = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"]
    granted = [*nobody, f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    python = str(Path(sys.executable))
    for prefix, allowed in ((granted, True), (nobody, False)):
        for command in ([NFT, "list", "tables"], [python, "-c", _OPEN_PACKET_SOCKET]):
            result = subprocess.run(
                [*prefix, *command], capture_output=True, text=True, timeout=60, check=False
            )
            assert (result.returncode == 0) is allowed, (prefix, command, result.stderr)
