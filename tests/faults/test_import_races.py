"""`vpnreg import` against itself and against SIGKILL, as real processes, on SQLite and PostgreSQL
(issue 16, Faults).

Two imports of one file started together: one imports it whole, the other exits 1 with its
problems (every row now overlaps) and "nothing imported", having written nothing. An import
killed with SIGKILL at any point leaves every table as it was and the audit chain valid.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import func, select

from tests.console import VPNREG
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import ISP, Application, AuditLogRow, Claim, Organisation

ROWS = 20_000


def _csv(path: Path, rows: int) -> Path:
    until = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    lines = ["organisation,category,isp,subscriber_id,prefix,valid_until"]
    lines += [
        f"Org {i % 50},software_house,ISP {i % 5},S{i},2001:db8:{i // 256:x}:{i % 256:x}00::/56,"
        f"{until}"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VPNREG_DATABASE_URL": url,
        "VPNREG_DATA_DIR": str(tmp_path),
        "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
    }


def _import(url: str, tmp_path: Path, file: Path, name: str) -> subprocess.Popen[bytes]:
    """`vpnreg import FILE`, its output in files (a pipe nobody reads would stall it)."""
    with (tmp_path / f"{name}.out").open("wb") as out, (tmp_path / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            [str(VPNREG), "import", str(file)], env=_env(url, tmp_path), stdout=out, stderr=err
        )


def _outcome(process: subprocess.Popen[bytes], tmp_path: Path, name: str) -> tuple[int, str, str]:
    code = process.wait(timeout=240)
    return code, (tmp_path / f"{name}.out").read_text(), (tmp_path / f"{name}.err").read_text()


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return {
                model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Application, Claim, Organisation, ISP, AuditLogRow)
            }
    finally:
        engine.dispose()


def _audit_verifies(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VPNREG), "audit", "verify"],
        env=_env(url, tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )


def test_two_imports_of_one_file_started_together_give_one_import(
    fresh_url: str, tmp_path: Path
) -> None:
    upgrade(fresh_url)
    file = _csv(tmp_path / "legacy.csv", 2_000)
    started = {name: _import(fresh_url, tmp_path, file, name) for name in ("first", "second")}
    outcomes = [_outcome(process, tmp_path, name) for name, process in started.items()]

    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 1], outcomes
    (_, out, _), (_, _, refusal) = sorted(outcomes, key=lambda o: o[0])
    assert "imported 2000 registrations" in out
    assert refusal.splitlines()[-1] == f"vpnreg: {file}: 2000 problems; nothing imported", refusal[
        -500:
    ]
    assert "[overlap]" in refusal and "Traceback" not in refusal
    counts = _counts(fresh_url)
    assert counts["Application"] == counts["Claim"] == 2_000
    assert counts["Organisation"] == 50 and counts["ISP"] == 5
    verified = _audit_verifies(fresh_url, tmp_path)
    assert verified.returncode == 0, verified.stderr


def test_an_import_killed_at_any_point_changes_nothing(fresh_url: str, tmp_path: Path) -> None:
    upgrade(fresh_url)
    file = _csv(tmp_path / "legacy.csv", ROWS)
    before = _counts(fresh_url)
    # Points spread over the whole run: start-up, checking, writing, committing. A kill that
    # lands after the commit (a fast machine) must find the import whole: all or nothing.
    killed_before_commit = 0
    for delay in (0.3, 0.8, 1.5, 2.5, 4.0, 6.0):
        process = _import(fresh_url, tmp_path, file, f"killed-{delay}")
        time.sleep(delay)
        if process.poll() is not None:
            break  # it finished before this point: later points cannot be reached
        process.send_signal(signal.SIGKILL)
        process.wait()
        after = _counts(fresh_url)
        verified = _audit_verifies(fresh_url, tmp_path)
        assert verified.returncode == 0, verified.stderr
        if after != before:
            assert after["Application"] == after["Claim"] == ROWS, f"killed after {delay} s"
            break
        killed_before_commit += 1
    # Start-up and checking alone take longer than the first three points on any machine.
    assert killed_before_commit >= 3, f"only {killed_before_commit} kills landed before commit"
