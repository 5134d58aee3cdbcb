"""The analytics export and DuckDB's answers, on both backends: reports stored through the real
service, written as day partitions by `analytics.export`, read back by pyarrow and by the
queries (ADR 0015)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from sqlalchemy.orm import Session

from tests.analytics import reports
from tests.analytics.reports import DAY1, DAY2, DAY3, at, blocked, store, store_week
from vpnreg.analytics import duckdb_runner
from vpnreg.analytics.export import export
from vpnreg.analytics.layout import COUNTS, REPORTS, has_data
from vpnreg.analytics.queries import QUERIES
from vpnreg.registry.services.report_export import COUNT_FIELDS, REPORT_FIELDS


@pytest.fixture
def data(session: Session, tmp_path: Path) -> Path:
    store_week(session)
    out = tmp_path / "analytics"
    summary = export(session, to=out)
    assert summary.days == [DAY1, DAY2, DAY3]
    assert summary.count_rows == sum(reports.COUNT_ROWS.values())
    assert summary.report_rows == sum(reports.REPORT_ROWS.values())
    return out


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_the_files_hold_the_services_fields_in_order() -> None:
    assert COUNTS.schema.names == list(COUNT_FIELDS)
    assert REPORTS.schema.names == list(REPORT_FIELDS)


def test_each_day_has_one_file_per_dataset_holding_that_days_rows(data: Path) -> None:
    assert [p.relative_to(data).as_posix() for p in _files(data)] == [
        f"{dataset}/day={day}/part-0.parquet"
        for dataset in ("counts", "reports")
        for day in (DAY1, DAY2, DAY3)
    ]
    for day in (DAY1, DAY2, DAY3):
        counts = pq.read_table(COUNTS.partition_file(data, day))
        assert counts.schema == COUNTS.schema
        assert counts.num_rows == reports.COUNT_ROWS[day]
        assert {h.date() for h in counts.column("hour").to_pylist()} == {day}
        arrived = pq.read_table(REPORTS.partition_file(data, day))
        assert arrived.num_rows == reports.REPORT_ROWS[day]
        assert {t.date() for t in arrived.column("received_at").to_pylist()} == {day}


def test_a_count_row_carries_its_reports_gateway_mode_and_feed(data: Path) -> None:
    rows = pq.read_table(COUNTS.partition_file(data, DAY1)).to_pylist()
    late = [r for r in rows if r["hour"] == at(DAY1, 22)]
    assert {r["gateway_id"] for r in late} == {"gw-south"}
    assert {(r["mode"], r["feed_session"], r["feed_serial"]) for r in late} == {
        ("nftables", reports.SESSION, 10)
    }
    assert late[0]["set_hash"] == f"{10:064x}"
    trial = next(r for r in rows if r["gateway_id"] == "gw-trial")
    assert (trial["mode"], trial["feed_serial"], trial["prefix"]) == (
        "dry-run",
        None,
        "203.0.113.0/24",
    )


def test_exporting_again_writes_the_same_bytes_and_leaves_no_temporary_file(
    session: Session, data: Path
) -> None:
    before = {p: p.read_bytes() for p in _files(data)}
    export(session, to=data)
    assert {p: p.read_bytes() for p in _files(data)} == before


def test_a_late_report_rewrites_its_day_and_since_leaves_earlier_days_alone(
    session: Session, data: Path
) -> None:
    untouched = COUNTS.partition_file(data, DAY1).stat().st_ino
    rewritten = COUNTS.partition_file(data, DAY2).stat().st_ino
    store(session, "gw-north", at(DAY3, 23), 12, ((blocked(at(DAY2, 3), "ipsec"), 50),))

    summary = export(session, to=data, since=DAY2)

    assert summary.days == [DAY2, DAY3]
    assert COUNTS.partition_file(data, DAY1).stat().st_ino == untouched
    assert COUNTS.partition_file(data, DAY2).stat().st_ino != rewritten  # replaced by a rename
    answer = duckdb_runner.run(QUERIES["blocks-per-protocol"], data=data, first_day=DAY2)
    assert (DAY2, "ipsec", 56, 1) in answer.rows


def test_an_empty_registry_exports_nothing(session: Session, tmp_path: Path) -> None:
    summary = export(session, to=tmp_path)
    assert (summary.days, summary.count_rows, summary.report_rows) == ([], 0, 0)
    assert _files(tmp_path) == []
    assert not has_data(tmp_path)


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_duckdb_answers_each_query(data: Path, name: str) -> None:
    result = duckdb_runner.run(QUERIES[name], data=data)
    assert result.rows == reports.EXPECTED[name]


def test_the_day_bounds_restrict_every_query(data: Path) -> None:
    def run(name: str, first: dt.date, last: dt.date) -> list[tuple[object, ...]]:
        return duckdb_runner.run(QUERIES[name], data=data, first_day=first, last_day=last).rows

    assert run("blocks-per-protocol", DAY2, DAY2) == [
        r for r in reports.BLOCKS_PER_PROTOCOL if r[0] == DAY2
    ]
    assert run("registered-but-blocked", DAY2, DAY3) == [
        (41, "gw-south", 10, DAY2, DAY3, 10, 10, 0),
        (42, "gw-trial", 4, DAY3, DAY3, 11, 11, 4),
    ]
    assert run("gateway-lag", DAY3, DAY3) == [r for r in reports.GATEWAY_LAG if r[0] == DAY3]
    assert run("gateway-lag", dt.date(2027, 1, 1), dt.date(2027, 1, 31)) == []


def test_days_outside_the_bounds_are_not_read(data: Path) -> None:
    # Partition pruning, shown by its effect: day 3's files are unreadable, and a query for
    # days 1 and 2 still answers because it never opens them. (DuckDB takes the schema from the
    # first file, day 1's, whatever the bounds.)
    for dataset in (COUNTS, REPORTS):
        dataset.partition_file(data, DAY3).write_bytes(b"not parquet")
    for name in sorted(QUERIES):
        result = duckdb_runner.run(QUERIES[name], data=data, first_day=DAY1, last_day=DAY2)
        assert result.rows, name
    result = duckdb_runner.run(QUERIES["gateway-lag"], data=data, first_day=DAY1, last_day=DAY2)
    assert result.rows == [r for r in reports.GATEWAY_LAG if r[0] != DAY3]
    with pytest.raises(duckdb.Error, match="Parquet"):
        duckdb_runner.run(QUERIES["gateway-lag"], data=data, first_day=DAY3, last_day=DAY3)


def test_a_dataset_without_files_reads_as_empty(data: Path) -> None:
    for day in (DAY1, DAY2, DAY3):
        COUNTS.partition_file(data, day).unlink()
    assert duckdb_runner.run(QUERIES["blocks-per-protocol"], data=data).rows == []
    assert duckdb_runner.run(QUERIES["gateway-lag"], data=data).rows == reports.GATEWAY_LAG
