"""`vpnreg import` given hostile files through the real console script: a 100,000-line file with
one bad row at its end, files in UTF-16, cells longer than their columns: each refused in short
lines naming the file line, exit 1, nothing written (the registry and the audit log unchanged)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from vpnreg.core.legacy_csv import LEGACY_HEADER

#: The real vpnreg over a copied registry, as in test_contract.py.
pytestmark = pytest.mark.slow

HEADER = ",".join(LEGACY_HEADER)


def tables(tmp_path: Path) -> tuple[int, ...]:
    with sqlite3.connect(tmp_path / "registry.db") as db:
        return tuple(
            db.execute(f"select count(*) from {name}").fetchone()[0]
            for name in ("applications", "claims", "organisations", "isps", "audit_log")
        )


def test_a_hundred_thousand_rows_with_one_bad_row_at_the_end_write_nothing(
    registry: Run, tmp_path: Path
) -> None:
    before = tables(tmp_path)
    body = "".join(
        f"Org {i % 997},software_house,Indus Fibre,S{i},"
        f"2001:db8:{i // 4096:x}:{i % 4096:x}0::/60,2030-01-31\n"
        for i in range(100_000)
    )
    path = tmp_path / "legacy.csv"
    path.write_text(f"{HEADER}\n{body}Last Ltd,bank,Indus Fibre,L,10.9.9.0/24,2030-01-31\n")
    result = registry("import", str(path))
    assert result.code == 1
    assert result.err_lines == [
        f"vpnreg: {path}:100002: prefix: 10.9.9.0/24 lies in 10.0.0.0/8 "
        "(private-use, RFC 1918) [private]: '10.9.9.0/24'",
        f"vpnreg: {path}: 1 problems; nothing imported",
    ]
    assert tables(tmp_path) == before


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("utf-16", "1: the file is UTF-16, not UTF-8; save it as UTF-8 (bytes fffe)"),
        ("utf-16-le", "1: NUL bytes: the file is UTF-16 or binary, not UTF-8 text; save it as "
         "UTF-8 (bytes 00)"),
    ],
)  # fmt: skip
def test_a_utf16_file_is_named_as_such(
    registry: Run, tmp_path: Path, encoding: str, message: str
) -> None:
    before = tables(tmp_path)
    path = tmp_path / "legacy.csv"
    path.write_bytes(
        f"{HEADER}\nGamma,bank,Indus Fibre,G,192.0.2.0/24,2030-01-31\n".encode(encoding)
    )
    result = registry("import", str(path))
    assert (result.code, result.err_lines) == (1, [f"vpnreg: {path}:{message}"])
    assert tables(tmp_path) == before


def test_a_cell_longer_than_its_column_is_refused_in_a_short_line(
    registry: Run, tmp_path: Path
) -> None:
    before = tables(tmp_path)
    path = tmp_path / "legacy.csv"
    path.write_text(
        f"{HEADER}\nGamma,bank,Indus Fibre,G,192.0.2.0/24,2030-01-31\n"
        f"{'O' * 100_000},bank,Indus Fibre,H,198.51.100.0/24,2030-01-31\n"
    )
    result = registry("import", str(path))
    assert result.code == 1
    assert len(result.err_lines) == 1 and len(result.err) < 300
    assert f"{path}:3: organisation is longer than 200 characters" in result.err
    assert "(100000 characters)" in result.err
    assert tables(tmp_path) == before
