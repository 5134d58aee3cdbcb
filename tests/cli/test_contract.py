"""The CLI contract, through the real console script: exit codes, one-line errors, effects."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from vpnreg.core.review import PROVISIONAL_DAYS, RENEWAL_DAYS

#: Each test runs the real vpnreg several times, most on a registry built by ~13 CLI runs.
pytestmark = pytest.mark.slow

APPLICATION = """\
organisation: Acme Software
isp: Indus Fibre
prefixes:
  - prefix: 203.0.113.0/26
    peers: [198.51.100.0/24]
  - 2001:db8:10::/48
"""


def _apply(run: Run, tmp_path: Path, text: str = APPLICATION, actor: str = "alice") -> str:
    path = tmp_path / "application.yaml"
    path.write_text(text)
    result = run("apply", str(path), "--actor", actor)
    assert result.code == 0, result.err
    assert "state submitted" in result.out
    return result.out.split()[0]  # the tracking number


def _lookup(run: Run, ip: str) -> dict[str, object]:
    result = run("lookup", ip, "--json")
    assert result.code == 0, result.err
    answer: dict[str, object] = json.loads(result.out)
    return answer


def test_the_whole_review_makes_the_addresses_registered(registry: Run, tmp_path: Path) -> None:
    tracking = _apply(registry, tmp_path)
    assert _lookup(registry, "203.0.113.9")["registered"] is False
    assert registry("review", "verify", tracking, "--actor", "isp1").code == 0
    assert registry("review", "endorse", tracking, "--actor", "seb").code == 0
    approved = registry("review", "approve", tracking, "--actor", "reg1", "--expect-version", "4")
    assert approved.code == 0, approved.err
    assert "state active" in approved.out
    answer = _lookup(registry, "203.0.113.9")
    assert answer["registered"] is True
    assert answer["category"] == "software_house"
    assert answer["tracking_number"] == tracking
    assert isinstance(answer["registration_id"], int)
    assert answer["valid_until"]
    assert _lookup(registry, "2001:db8:10:ffff::1")["registered"] is True
    assert registry("audit", "verify").code == 0


def test_a_stale_version_is_refused_and_changes_nothing(registry: Run, tmp_path: Path) -> None:
    tracking = _apply(registry, tmp_path)
    stale = registry("review", "verify", tracking, "--actor", "isp1", "--expect-version", "1")
    assert stale.code == 1
    assert len(stale.err_lines) == 1
    assert "version 1" in stale.err
    assert registry("review", "endorse", tracking, "--actor", "seb").code == 1  # still submitted


def test_roles_and_scopes_are_checked(registry: Run, tmp_path: Path) -> None:
    tracking = _apply(registry, tmp_path)
    wrong_isp = registry("review", "verify", tracking, "--actor", "isp2")
    assert wrong_isp.code == 1
    assert len(wrong_isp.err_lines) == 1
    applicant_approves = registry("review", "approve", tracking, "--actor", "alice")
    assert applicant_approves.code == 1
    nobody = registry("review", "verify", tracking, "--actor", "mallory")
    assert nobody.code == 1
    assert "mallory" in nobody.err


def test_rejection_appeal_and_overturn_by_another_reviewer(registry: Run, tmp_path: Path) -> None:
    tracking = _apply(registry, tmp_path)
    registry("review", "verify", tracking, "--actor", "isp1")
    registry("review", "endorse", tracking, "--actor", "seb")
    assert registry("review", "reject", tracking, "--actor", "reg1").code == 2  # no reason
    rejected = registry("review", "reject", tracking, "--actor", "reg1", "--reason", "no need")
    assert "state rejected" in rejected.out
    assert "appealed" in registry("appeal", "file", tracking, "--actor", "alice",
                                  "--reason", "letter attached").out  # fmt: skip
    same = registry("appeal", "overturn", tracking, "--actor", "reg1", "--reason", "ok")
    assert same.code == 1
    other = registry("appeal", "overturn", tracking, "--actor", "reg2", "--reason", "ok")
    assert other.code == 0, other.err
    assert "state active" in other.out


def test_withdraw_and_overlap_naming_the_holder(registry: Run, tmp_path: Path) -> None:
    first = _apply(registry, tmp_path)
    # Both in review at once: the first approved wins, the second is refused at approval.
    second = _apply(registry, tmp_path, APPLICATION.replace("2001:db8:10::/48", "2001:db8:11::/48"))
    for verb, actor in (("verify", "isp1"), ("endorse", "seb"), ("approve", "reg1")):
        assert registry("review", verb, first, "--actor", actor).code == 0
    # Once registered, the same space is refused at submission already, naming the holder.
    path = tmp_path / "third.yaml"
    path.write_text(APPLICATION.replace("2001:db8:10::/48", "2001:db8:12::/48"))
    third = registry("apply", str(path), "--actor", "alice")
    assert third.code == 1
    assert first in third.err and "already registered" in third.err
    registry("review", "verify", second, "--actor", "isp1")
    registry("review", "endorse", second, "--actor", "seb")
    clash = registry("review", "approve", second, "--actor", "reg1")
    assert clash.code == 1
    assert first in clash.err
    assert "state withdrawn" in registry("withdraw", second, "--actor", "alice").out


def test_lookup_answers_every_address_and_refuses_non_addresses(registry: Run) -> None:
    for address in ("10.1.2.3", "192.0.2.200", "::1"):
        answer = _lookup(registry, address)
        assert answer == {
            "ip": address,
            "registered": False,
            "registration_id": None,
            "tracking_number": None,
            "category": None,
            "prefix": None,
            "valid_until": None,
            "binding": None,
        }
    for garbage in ("not-an-ip", "300.1.1.1", "192.0.2.0/24"):
        result = registry("lookup", garbage)
        assert result.code == 2
        assert len(result.err_lines) == 1


def test_usage_errors_exit_2_with_one_line(registry: Run) -> None:
    for args in (("nosuch",), ("review", "approve"), ("lookup",)):
        result = registry(*args)
        assert result.code == 2, args
        assert len(result.err_lines) == 1, result.err


def test_a_missing_schema_is_explained(run: Run) -> None:
    result = run("lookup", "192.0.2.1")
    assert result.code == 1
    assert "vpnreg db upgrade" in result.err


HEADER = "organisation,category,isp,subscriber_id,prefix,valid_until"


def test_import_is_all_or_nothing_and_names_every_bad_line(registry: Run, tmp_path: Path) -> None:
    bad = tmp_path / "legacy.csv"
    bad.write_text(
        "\r\n".join(
            [
                HEADER,
                "Gamma Calls,call_centre,Indus Fibre,C-1,192.0.2.0/27,2030-01-31",
                "Delta Freelance,freelancer,Indus Fibre,C-2,10.0.0.0/24,2030-01-31",
                "Gamma Calls,call_centre,Indus Fibre,C-3,192.0.2.16/28,2030-01-31",
                "Eta Ltd,spaceship,Indus Fibre,C-4,198.51.100.0/28,2030-01-31",
                "Zeta Ltd,other,New ISP,C-5,198.51.100.16/28,2001-01-01",
                "Theta Ltd,other,New ISP,C-6,198.51.100.33/28,2030-01-31",
            ]
        )
        + "\r\n"
    )
    result = registry("import", str(bad))
    assert result.code == 1
    lines = result.err_lines
    by_line = {n: [x for x in lines if f"legacy.csv:{n}:" in x] for n in range(2, 8)}
    assert by_line[2] == []
    assert "10.0.0.0/24" in by_line[3][0]
    assert "line 2" in by_line[4][0]
    assert "spaceship" in by_line[5][0]
    assert "2001-01-01" in by_line[6][0]
    assert "198.51.100.32/28" in by_line[7][0]
    assert _lookup(registry, "192.0.2.1")["registered"] is False


def test_import_dry_run_then_for_real(registry: Run, tmp_path: Path) -> None:
    good = tmp_path / "legacy.csv"
    good.write_text(
        f"{HEADER}\n"
        '"Gamma Calls, Ltd",call_centre,Indus Fibre,C-1,192.0.2.0/27,2030-01-31\n'
        "Iota Freelance,freelancer,Ravi Broadband,C-2,2001:db8:99::/48,2030-06-30\n"
    )
    dry = registry("import", str(good), "--dry-run")
    assert dry.code == 0, dry.err
    assert "would import 2" in dry.out
    assert _lookup(registry, "192.0.2.1")["registered"] is False
    real = registry("import", str(good))
    assert real.code == 0, real.err
    answer = _lookup(registry, "192.0.2.1")
    assert answer["registered"] is True
    assert answer["valid_until"] == "2030-01-31"
    assert answer["category"] == "call_centre"
    again = registry("import", str(good))
    assert again.code == 1  # the same space is now taken
    assert registry("audit", "verify").code == 0


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
        # JSON that no longer parses: tampering too, not an internal error (exit 70)
        "UPDATE audit_log SET after = after || 'x' WHERE seq = 3",
    ],
    ids=["actor", "unparseable-json"],
)
def test_audit_verify_names_the_first_tampered_event(
    registry: Run, tmp_path: Path, tamper: str
) -> None:
    assert registry("audit", "verify").code == 0
    db = sqlite3.connect(tmp_path / "registry.db")
    triggers = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for name in triggers:
        db.execute(f'DROP TRIGGER "{name}"')
    db.execute(tamper)
    db.commit()
    db.close()
    result = registry("audit", "verify")
    assert result.code == 1
    assert len(result.err_lines) == 1
    assert "event 3" in result.err


def test_demo_is_idempotent_and_covers_every_state(run: Run, tmp_path: Path) -> None:
    assert run("db", "upgrade").code == 0
    first = run("demo")
    assert first.code == 0, first.err
    assert "regulator1" in first.out
    assert "demo-password" in first.out
    db = sqlite3.connect(tmp_path / "registry.db")
    states = {row[0] for row in db.execute("SELECT DISTINCT state FROM applications")}
    apps = db.execute("SELECT count(*) FROM applications").fetchone()[0]
    orgs = db.execute("SELECT count(*) FROM organisations").fetchone()[0]
    roles = {row[0] for row in db.execute("SELECT DISTINCT role FROM users")}
    db.close()
    assert states == {
        "draft", "submitted", "isp_verified", "sector_endorsed", "approved", "active",
        "expiring", "expired", "rejected", "appealed", "upheld", "revoked", "withdrawn",
        "suspended",
    }  # fmt: skip
    assert 190 <= apps <= 220
    assert orgs == 50
    assert roles >= {"applicant", "isp", "sector_body", "regulator", "auditor", "admin"}
    second = run("demo")
    assert second.code == 0
    assert "already loaded" in second.out
    db = sqlite3.connect(tmp_path / "registry.db")
    assert db.execute("SELECT count(*) FROM applications").fetchone()[0] == apps
    db.close()
    assert run("audit", "verify").code == 0


def test_renew_help_states_the_real_periods(run: Run) -> None:
    result = run("renew", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert f"for {RENEWAL_DAYS} days from its end" in text
    assert f"a first approval is provisional, {PROVISIONAL_DAYS} days" in text
