"""`vpnreg analytics export`: the registry's gateway reports written as Parquet, day by day.

Each day's partition is rewritten whole from the database (ADR 0015): the rows stream from the
registry in batches into a Parquet file beside the target, which is then renamed over it
(vpnreg.files.stage). A reader sees the old day or the new one, never half of one, and
exporting the same day twice writes the same bytes. A report that arrives late (a gateway's
spool held it for days) lands in an old day's counts, so a scheduled export re-exports the
days a spool can still reach (`--since`, a week back).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from vpnreg.analytics.layout import COUNTS, REPORTS, Dataset
from vpnreg.files import stage
from vpnreg.registry.services import report_export
from vpnreg.registry.services.report_export import Batch

#: Zstandard: read by DuckDB, Spark and pyarrow alike, and about a third smaller than Snappy on
#: these rows (repeated gateway ids, protocols, verdicts and hashes).
COMPRESSION = "zstd"
#: Rows per Parquet row group: the unit a reader skips or reads (by its column statistics).
#: Half a million rows are a few MB compressed and some 75 MB as Arrow while gathered; the
#: database batches are smaller and are gathered until a group is full.
ROW_GROUP_ROWS = 500_000


@dataclass
class ExportSummary:
    """What one export wrote: rows per dataset and the days it (re)wrote."""

    days: list[dt.date] = field(default_factory=list)
    count_rows: int = 0
    report_rows: int = 0


def export(session: Session, *, to: Path, since: dt.date | None = None) -> ExportSummary:
    """Rewrite every day's partitions from `since` (default: the first report) to the last day
    with data under `to`. A day without rows of a dataset gets no file of it."""
    summary = ExportSummary()
    for day in report_export.days(session, since=since):
        counts = write_partition(to, COUNTS, day, report_export.count_rows(session, day=day))
        reports = write_partition(to, REPORTS, day, report_export.report_rows(session, day=day))
        if counts or reports:
            summary.days.append(day)
        summary.count_rows += counts
        summary.report_rows += reports
    return summary


def write_partition(root: Path, dataset: Dataset, day: dt.date, batches: Iterable[Batch]) -> int:
    """Replace `dataset`'s file for `day` with `batches`' rows; the number of rows. No rows:
    nothing is written (and a file already there stays)."""
    stream = iter(batches)
    first = next((batch for batch in stream if batch), None)
    if first is None:
        return 0
    target = dataset.partition_file(root, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = [0]

    def chunks() -> Iterator[bytes]:
        sink = _Sink()
        with pq.ParquetWriter(sink, dataset.schema, compression=COMPRESSION) as writer:
            group: list[pa.RecordBatch] = []
            for batch in _chain(first, stream):
                group.append(_record_batch(dataset.schema, batch))
                written[0] += len(batch)
                if sum(b.num_rows for b in group) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(group), row_group_size=ROW_GROUP_ROWS)
                    group.clear()
                    yield sink.drain()
            if group:
                writer.write_table(pa.Table.from_batches(group), row_group_size=ROW_GROUP_ROWS)
        yield sink.drain()  # the last group and the footer, written when the writer closed

    stage(target, chunks()).put()
    return written[0]


def _chain(first: Batch, rest: Iterator[Batch]) -> Iterator[Batch]:
    yield first
    yield from (batch for batch in rest if batch)


def _record_batch(schema: pa.Schema, rows: Batch) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    return pa.record_batch(
        [pa.array(values, type=f.type) for f, values in zip(schema, columns, strict=True)],
        schema=schema,
    )


class _Sink(io.RawIOBase):
    """Where the Parquet writer writes: bytes kept until drained, so the file streams through
    vpnreg.files.stage one row group at a time instead of being built in memory whole."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data
