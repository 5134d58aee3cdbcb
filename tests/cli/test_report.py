"""`vpnreg report --month YYYY-MM --format html|pdf` through the real console script: the
month's figures with the charts inline (HTML) or as a real PDF, and bad input refused in one
line with exit code 2."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.cli.conftest import Run
from tests.cli.test_contract import _apply


@pytest.fixture
def month(registry: Run, tmp_path: Path) -> str:
    """This month (the CLI runs on the system clock), with one application taken to approval."""
    tracking = _apply(registry, tmp_path)
    for step, actor in (("verify", "isp1"), ("endorse", "seb"), ("approve", "reg1")):
        assert registry("review", step, tracking, "--actor", actor).code == 0
    return f"{dt.datetime.now(dt.UTC):%Y-%m}"


def test_the_html_report_holds_each_chart_inline_with_its_table(
    registry: Run, month: str, tmp_path: Path
) -> None:
    result = registry("report", "--month", month, "--format", "html", "--out", "report.html")
    assert result.code == 0, result.err
    assert f"wrote the {month} report (html" in result.out
    html = (tmp_path / "report.html").read_text()
    assert f"monthly report {month}</h1>" in html
    assert len(re.findall(r'<svg [^>]*role="img" aria-label="[^"]+"', html)) == 5
    assert len(re.findall(r"<details open>", html)) == 5
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/", "")
    # the application's one approval, and its software house in force today
    shares = html.split('id="decision-shares"', 1)[1].split("</figure>", 1)[0]
    assert '<th scope="row">approved</th><td>1</td><td>decisions</td><td>1</td><td>100.0</td>' in (
        shares
    )
    today = dt.datetime.now(dt.UTC).date().isoformat()
    in_force = html.split('id="registrations-in-force"', 1)[1].split("</figure>", 1)[0]
    assert f'<th scope="row">{today}</th><td>1</td>' in in_force
    # without --out, to standard output
    piped = registry("report", "--month", month)
    assert piped.code == 0 and piped.out.startswith("<!doctype html>")


def test_the_pdf_report_is_a_pdf_naming_its_month(
    registry: Run, month: str, tmp_path: Path
) -> None:
    result = registry("report", "--month", month, "--format", "pdf", "--out", "report.pdf")
    assert result.code == 0, result.err
    data = (tmp_path / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    pdf = PdfReader(io.BytesIO(data))
    assert (
        pdf.metadata is not None and pdf.metadata.title == f"VPN registry: monthly report {month}"
    )
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert f"monthly report {month}" in text
    for title in ("Registrations in force by category", "Review turnaround per stage"):
        assert title in text
    assert "Outcome" in text and "approved" in text  # the shares' table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--month", "2026-13"), "no such month", id="month-13"),
        pytest.param(("--month", "November"), "expected YYYY-MM", id="not-a-month"),
        pytest.param(("--month", "2026-11", "--format", "doc"), "--format", id="bad-format"),
        pytest.param(
            ("--month", "2026-11", "--out", "nowhere/r.html"), "no such directory", id="no-dir"
        ),
        pytest.param((), "--month", id="no-month"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    registry: Run, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = registry("report", *args)
    assert result.code == 2
    assert len(result.err_lines) == 1 and message in result.err_lines[0], result.err
    assert result.out == ""
    assert not (tmp_path / "nowhere").exists()
