"""Where the analytics files are and what they hold: two datasets under one directory, each
partitioned by UTC day in hive style, one file per partition.

    DIR/counts/day=2026-12-04/part-0.parquet    the counts whose hour is on that day
    DIR/reports/day=2026-12-04/part-0.parquet   the reports that arrived on that day

`day` is not stored in the files: readers (DuckDB, Spark) take it from the directory name,
which is what lets them skip every day a query does not ask for (partition pruning).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

#: The partition column, a DATE taken from the directory name.
PARTITION = "day"
#: The one file of a partition; a rewrite replaces it whole (temporary file, then rename).
PART_FILE = "part-0.parquet"
_DAY_DIR = re.compile(r"^day=(\d{4}-\d{2}-\d{2})$")

_TIME = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Dataset:
    name: str
    #: The columns stored in each file, in order (the partition column is not among them).
    schema: pa.Schema

    def directory(self, root: Path) -> Path:
        return root / self.name

    def partition_file(self, root: Path, day: dt.date) -> Path:
        return self.directory(root) / f"{PARTITION}={day.isoformat()}" / PART_FILE

    def days(self, root: Path) -> list[dt.date]:
        """The days that have a file under `root`, in order."""
        where = self.directory(root)
        if not where.is_dir():
            return []
        found = []
        for entry in where.iterdir():
            match = _DAY_DIR.match(entry.name)
            if match and (entry / PART_FILE).is_file():
                found.append(dt.date.fromisoformat(match.group(1)))
        return sorted(found)

    def read_schema(self) -> pa.Schema:
        """The schema a reader sees: the stored columns and the partition column."""
        return self.schema.append(pa.field(PARTITION, pa.date32()))


COUNTS = Dataset(
    "counts",
    pa.schema(
        [
            pa.field("gateway_id", pa.string(), nullable=False),
            pa.field("report_id", pa.string(), nullable=False),
            pa.field("hour", _TIME, nullable=False),
            pa.field("protocol", pa.string(), nullable=False),
            pa.field("verdict", pa.string(), nullable=False),
            pa.field("registration_id", pa.int64()),
            pa.field("prefix", pa.string()),
            pa.field("flows", pa.int64(), nullable=False),
            pa.field("mode", pa.string(), nullable=False),
            pa.field("feed_session", pa.string()),
            pa.field("feed_serial", pa.int64()),
            pa.field("set_hash", pa.string()),
        ]
    ),
)
REPORTS = Dataset(
    "reports",
    pa.schema(
        [
            pa.field("gateway_id", pa.string(), nullable=False),
            pa.field("report_id", pa.string(), nullable=False),
            pa.field("created", _TIME, nullable=False),
            pa.field("received_at", _TIME, nullable=False),
            pa.field("mode", pa.string(), nullable=False),
            pa.field("feed_session", pa.string()),
            pa.field("feed_serial", pa.int64()),
            pa.field("set_hash", pa.string()),
        ]
    ),
)
DATASETS = (COUNTS, REPORTS)


def has_data(root: Path) -> bool:
    """Whether `root` holds at least one partition of either dataset."""
    return any(dataset.days(root) for dataset in DATASETS)
