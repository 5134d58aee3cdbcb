"""Each analytics query run by Spark SQL (PySpark in local mode, Java 17) and by DuckDB over the
same files gives the same answer: the one SQL text of analytics.queries holds in both dialects.

The files come from the real path: reports stored through the registry's service in a migrated
SQLite registry, written by analytics.export. One Spark session serves the whole module (its
start-up takes seconds); the data is a few dozen rows.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from sqlalchemy.orm import Session

from tests.analytics import reports
from tests.analytics.reports import DAY1, DAY2, DAY3, store_week
from vpnreg.analytics import duckdb_runner, spark_job
from vpnreg.analytics.export import export
from vpnreg.analytics.layout import COUNTS, REPORTS
from vpnreg.analytics.queries import QUERIES
from vpnreg.registry.db import make_engine, upgrade

pytestmark = pytest.mark.slow

#: (first day, last day) the queries are asked for: every day, one day, a range without data.
BOUNDS = [
    pytest.param(None, None, id="all-days"),
    pytest.param(DAY2, DAY3, id="days-2-3"),
    pytest.param(DAY1, DAY1, id="day-1"),
    pytest.param(dt.date(2027, 1, 1), dt.date(2027, 12, 31), id="no-data"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("spark-data")
    url = f"sqlite:///{where / 'registry.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            store_week(session)
            export(session, to=where / "analytics")
    finally:
        engine.dispose()
    return where / "analytics"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = spark_job.session(
        "vpnreg-test",
        master="local[1]",  # one core: the machine is shared, and the data is tiny
        settings={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"},
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def _sorted(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted(rows, key=lambda row: [(v is None, str(v)) for v in row])


@pytest.mark.parametrize(("first", "last"), BOUNDS)
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_spark_and_duckdb_agree(
    spark: SparkSession,
    data: Path,
    name: str,
    first: dt.date | None,
    last: dt.date | None,
) -> None:
    query = QUERIES[name]
    on_spark = spark_job.run(spark, query, data=str(data), first_day=first, last_day=last)
    on_duckdb = duckdb_runner.run(query, data=data, first_day=first, last_day=last)
    assert on_spark.columns == on_duckdb.columns
    assert _sorted(on_spark.rows) == _sorted(on_duckdb.rows)
    if first is None:  # not an agreement on nothing: the whole answer, as worked out by hand
        assert _sorted(on_spark.rows) == _sorted(reports.EXPECTED[name])
    if first == DAY2:
        assert on_spark.rows


def test_spark_reads_only_the_days_asked_for(
    spark: SparkSession, data: Path, tmp_path: Path
) -> None:
    # Partition pruning on Spark, shown by its effect: day 3's files are unreadable in a copy,
    # and a query for days 1 and 2 still answers, as DuckDB does on the same copy.
    copy = tmp_path / "analytics"
    shutil.copytree(data, copy)
    for dataset in (COUNTS, REPORTS):
        dataset.partition_file(copy, DAY3).write_bytes(b"not parquet")
    query = QUERIES["gateway-lag"]
    on_spark = spark_job.run(spark, query, data=str(copy), first_day=DAY1, last_day=DAY2)
    on_duckdb = duckdb_runner.run(query, data=copy, first_day=DAY1, last_day=DAY2)
    assert _sorted(on_spark.rows) == _sorted(on_duckdb.rows)
    assert {row[0] for row in on_spark.rows} == {DAY1, DAY2}
