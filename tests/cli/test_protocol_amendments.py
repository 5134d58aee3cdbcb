"""`vpnreg amend-protocols` and `vpnreg review approve-protocols` / `refuse-protocols` through
the real console script (issue 17): the old list holds in the published feed until the regulator
approves; wrong actors and bad names exit 1 with one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from tests.cli.test_attestation_withdrawal import _registered

pytestmark = pytest.mark.slow


def _feed_protocols(run: Run) -> list[list[str]]:
    exported = run("feed", "export", "--format", "json")
    assert exported.code == 0, exported.err
    return [e["protocols"] for e in json.loads(exported.out)["entries"]]


def test_ask_approve_and_refuse(registry: Run, tmp_path: Path) -> None:
    tracking = _registered(registry, tmp_path)
    assert _feed_protocols(registry) == [[]]
    bad = registry("amend-protocols", tracking, "--actor", "bob", "--protocols", "telnet")
    assert bad.code == 1 and len(bad.err_lines) == 1 and "telnet" in bad.err
    outsider = registry("amend-protocols", tracking, "--actor", "alice", "--protocols", "ipsec")
    assert outsider.code == 1 and len(outsider.err_lines) == 1
    asked = registry(
        "amend-protocols", tracking, "--actor", "bob", "--protocols", "wireguard,openvpn"
    )
    assert asked.code == 0, asked.err
    assert asked.out.startswith(f"{tracking}: protocol amendment ")
    assert "(openvpn, wireguard) awaits the regulator" in asked.out
    assert _feed_protocols(registry) == [[]]  # the old list holds
    not_regulator = registry("review", "approve-protocols", tracking, "--actor", "isp1")
    assert not_regulator.code == 1 and len(not_regulator.err_lines) == 1
    approved = registry("review", "approve-protocols", tracking, "--actor", "reg1")
    assert approved.code == 0, approved.err
    assert approved.out.startswith(f"{tracking} protocols openvpn, wireguard: state active")
    assert _feed_protocols(registry) == [["openvpn", "wireguard"]]
    nothing = registry("review", "refuse-protocols", tracking, "--actor", "reg1")
    assert nothing.code == 1
    assert nothing.err_lines == [f"vpnreg: {tracking} has no protocol amendment waiting"]

    assert registry("amend-protocols", tracking, "--actor", "bob").code == 0  # back to any
    refused = registry("review", "refuse-protocols", tracking, "--actor", "reg1")
    assert refused.code == 0, refused.err
    assert "protocols openvpn, wireguard kept (amendment refused)" in refused.out
    assert _feed_protocols(registry) == [["openvpn", "wireguard"]]
