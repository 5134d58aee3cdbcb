"""A PostgreSQL server that cannot be reached is one clear line and exit 1 from the CLI, naming
what the driver saw (the socket), never an internal error (issue 16, Faults)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.console import VPNREG


def test_the_cli_names_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-server-here"
    url = f"postgresql+psycopg://postgres@/registry?host={missing}&port=5999"
    result = subprocess.run(
        [str(VPNREG), "lookup", "192.0.2.1"],
        env={**os.environ, "VPNREG_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vpnreg: the registry's database is unavailable")
    assert str(missing) in lines[0]
