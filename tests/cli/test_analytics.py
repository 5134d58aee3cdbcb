"""`vpnreg analytics export | QUERY` as a user runs them: the registry's reports written as
Parquet, each query's answer as a table, CSV and JSON, and the usage errors (exit 2, one line)
and a directory without data (exit 1, one line) of docs/cli.md."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.analytics import reports
from tests.analytics.reports import DAY2, DAY3, store_week
from tests.cli.conftest import Run
from vpnreg.registry.db import make_engine, upgrade


@pytest.fixture
def exported(run: Run, tmp_path: Path) -> Path:
    """The test's registry with the week of reports, exported through the CLI to tmp/analytics."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            store_week(session)
    finally:
        engine.dispose()
    result = run("analytics", "export", "--to", "analytics")
    assert result.code == 0, result.err
    assert result.out.strip() == (
        "wrote 3 day(s) 2026-03-01..2026-03-03: 16 count rows, 10 reports, to analytics"
    )
    return tmp_path / "analytics"


def test_a_query_answers_as_csv(run: Run, exported: Path) -> None:
    result = run("analytics", "blocks-per-protocol", "--data", str(exported), "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.reader(io.StringIO(result.out)))
    assert rows[0] == ["day", "protocol", "blocked_flows", "gateways"]
    assert rows[1:] == [
        [str(day), protocol, str(flows), str(gateways)]
        for day, protocol, flows, gateways in reports.BLOCKS_PER_PROTOCOL
    ]


def test_a_query_answers_as_json_within_the_days_asked(run: Run, exported: Path) -> None:
    result = run(
        "analytics", "gateway-lag", "--data", str(exported),
        "--from", "2026-03-02", "--to", "2026-03-03", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    answer = json.loads(result.out)
    assert [(r["day"], r["gateway_id"], r["lag"]) for r in answer] == [
        (str(day), gateway, lag)
        for day, gateway, _, _, _, _, _, lag in reports.GATEWAY_LAG
        if day in (DAY2, DAY3)
    ]


def test_a_query_answers_as_a_table_by_default(run: Run, exported: Path) -> None:
    result = run("analytics", "registered-but-blocked", "--data", str(exported))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "registration_id", "gateway_id", "blocked_flows", "first_day", "last_day",
        "lowest_serial", "highest_serial", "dry_run_flows",
    ]  # fmt: skip
    assert lines[1].split() == ["41", "gw-south", "24", "2026-03-01", "2026-03-03", "10", "10", "0"]
    assert len(lines) == 3


def test_days_without_data_give_an_empty_answer(run: Run, exported: Path) -> None:
    result = run(
        "analytics", "blocks-per-protocol", "--data", str(exported), "--from", "2027-01-01"
    )
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["day  protocol  blocked_flows  gateways", "(no rows)"]


def test_an_export_with_no_reports_writes_nothing(run: Run, tmp_path: Path) -> None:
    assert run("db", "upgrade").code == 0
    result = run("analytics", "export", "--to", "out", "--since", "2026-03-01")
    assert result.code == 0, result.err
    assert result.out.strip() == "no gateway reports since 2026-03-01; nothing written"
    assert list((tmp_path / "out").iterdir()) == []


def test_since_n_days_counts_back_from_today(run: Run, tmp_path: Path) -> None:
    # The daily timer's form (deploy/vpnreg-analytics-export.service): today is the third day.
    assert run("db", "upgrade").code == 0
    before = dt.datetime.now(dt.UTC).date()
    result = run("analytics", "export", "--to", "out", "--since", "3d")
    after = dt.datetime.now(dt.UTC).date()
    assert result.code == 0, result.err
    firsts = {day - dt.timedelta(days=2) for day in (before, after)}
    assert result.out.strip() in {f"no gateway reports since {d}; nothing written" for d in firsts}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("blocked-per-day", "--data", "x"),
            "No such command 'blocked-per-day'.",
            id="unknown-query",
        ),
        pytest.param(
            ("gateway-lag", "--data", "x", "--from", "2026-02-30"),
            "--from '2026-02-30' is not a day (YYYY-MM-DD)",
            id="bad-day",
        ),
        pytest.param(
            ("gateway-lag", "--data", "x", "--to", "20260301"),
            "--to '20260301' is not a day (YYYY-MM-DD)",
            id="compact-day",
        ),
        pytest.param(
            ("gateway-lag", "--data", "x", "--from", "2026-03-02", "--to", "2026-03-01"),
            "--from 2026-03-02 is after --to 2026-03-01",
            id="reversed-days",
        ),
        pytest.param(
            ("export", "--to", "x", "--since", "yesterday"),
            "--since 'yesterday' is not a day (YYYY-MM-DD)",
            id="bad-since",
        ),
        pytest.param(
            ("export", "--to", "x", "--since", "0d"),
            "--since '0d': N must be 1 to 3660",
            id="zero-days",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(run: Run, args: tuple[str, ...], message: str) -> None:
    result = run("analytics", *args)
    assert result.code == 2
    assert result.err_lines == [f"vpnreg: {message}"]
    assert result.out == ""


def test_a_directory_without_data_is_refused_with_one_line(run: Run, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("analytics", "gateway-lag", "--data", "empty")
    assert result.code == 1
    assert result.err_lines == [
        "vpnreg: empty: no analytics data here (write it with `vpnreg analytics export`)"
    ]
