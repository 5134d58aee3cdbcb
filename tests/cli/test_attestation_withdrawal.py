"""`vpnreg review withdraw-attestation` and `vpnreg review reattest` through the real console
script (issue 17): exit codes, one-line errors, and the effect on the lookup and the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Run

pytestmark = pytest.mark.slow

BANK = """\
organisation: Beta Bank
isp: Indus Fibre
prefixes:
  - 203.0.113.64/26
"""


def _registered(run: Run, tmp_path: Path) -> str:
    path = tmp_path / "application.yaml"
    path.write_text(BANK)
    applied = run("apply", str(path), "--actor", "bob")
    assert applied.code == 0, applied.err
    tracking = applied.out.split()[0]
    assert run("review", "verify", tracking, "--actor", "isp1").code == 0
    approved = run("review", "approve", tracking, "--actor", "reg1")
    assert "state active" in approved.out, approved.err
    return tracking


def _registered_now(run: Run) -> bool:
    answer = run("lookup", "203.0.113.70", "--json")
    assert answer.code == 0, answer.err
    return bool(json.loads(answer.out)["registered"])


def test_withdraw_attestation_and_reattest(registry: Run, tmp_path: Path) -> None:
    tracking = _registered(registry, tmp_path)
    no_reason = registry("review", "withdraw-attestation", tracking, "--actor", "isp1")
    assert no_reason.code == 2
    assert no_reason.err_lines == ["vpnreg: withdraw_attestation needs --reason"]
    other_isp = registry(
        "review", "withdraw-attestation", tracking, "--actor", "isp2", "--reason", "gone"
    )
    assert other_isp.code == 1 and len(other_isp.err_lines) == 1
    assert "isp2 is not a user of the ISP" in other_isp.err
    stale = registry("review", "withdraw-attestation", tracking, "--actor", "isp1",
                     "--reason", "gone", "--expect-version", "2")  # fmt: skip
    assert stale.code == 1 and "version 2" in stale.err
    assert _registered_now(registry)

    done = registry("review", "withdraw-attestation", tracking, "--actor", "isp1",
                    "--reason", "line cancelled")  # fmt: skip
    assert done.code == 0, done.err
    assert done.out.startswith(f"{tracking} suspended (attestation withdrawn): state suspended")
    assert not _registered_now(registry)
    # The regulator does not re-attest; the ISP does, and the registration is back.
    assert registry("review", "reattest", tracking, "--actor", "reg1").code == 1
    back = registry("review", "reattest", tracking, "--actor", "isp1")
    assert back.code == 0, back.err
    assert f"{tracking} re-attested: state active" in back.out
    assert _registered_now(registry)
    assert registry("audit", "verify").code == 0


def test_a_suspended_registration_can_be_revoked(registry: Run, tmp_path: Path) -> None:
    tracking = _registered(registry, tmp_path)
    assert registry("review", "withdraw-attestation", tracking, "--actor", "isp1",
                    "--reason", "address reassigned").code == 0  # fmt: skip
    revoked = registry("review", "revoke", tracking, "--actor", "reg1", "--reason", "gone")
    assert revoked.code == 0, revoked.err
    assert "state revoked" in revoked.out
    again = registry("review", "reattest", tracking, "--actor", "isp1")
    assert again.code == 1
    assert again.err_lines == ["vpnreg: cannot reattest an application that is revoked"]
