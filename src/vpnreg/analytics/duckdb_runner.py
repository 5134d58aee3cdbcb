"""Answering a query on one machine: DuckDB (in memory) over the Parquet files under a directory.

Each dataset becomes a view over its day partitions, with `day` typed as a DATE from the
directory names; the query's day bounds let DuckDB open only those days' files. A dataset with
no file yet is an empty table of its schema, so every query runs (and finds nothing) on it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from vpnreg.analytics.layout import DATASETS, PART_FILE, PARTITION, Dataset
from vpnreg.analytics.queries import FIRST_DAY, LAST_DAY, Query
from vpnreg.analytics.result import Result


def run(
    query: Query,
    *,
    data: Path,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
) -> Result:
    """`query` over the files under `data`, for the days first_day..last_day (default: all)."""
    sql = query.render(
        engine="duckdb", first_day=first_day or FIRST_DAY, last_day=last_day or LAST_DAY
    )
    with duckdb.connect(":memory:") as con:
        for dataset in DATASETS:
            _view(con, data, dataset)
        cursor = con.execute(sql)
        columns = tuple(d[0] for d in cursor.description or ())
        return Result(columns, [tuple(row) for row in cursor.fetchall()])


def _view(con: duckdb.DuckDBPyConnection, data: Path, dataset: Dataset) -> None:
    if not dataset.days(data):
        empty = pa.Table.from_batches([], schema=dataset.read_schema())
        con.register(dataset.name, empty)
        return
    pattern = str(dataset.directory(data) / f"{PARTITION}=*" / PART_FILE)
    # the path as a parameter, not in the SQL text: any directory name works
    files = con.sql(
        f"SELECT * FROM read_parquet($files, hive_partitioning = true, "
        f"hive_types = {{'{PARTITION}': DATE}})",
        params={"files": pattern},
    )
    files.create_view(dataset.name)
