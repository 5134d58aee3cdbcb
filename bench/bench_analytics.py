"""Size of the analytics files and DuckDB's time over one day (ADR 0015, docs/scaling.md).

One synthetic day of a mid-sized deployment, written by the real partition writer
(analytics.export.write_partition): GATEWAYS gateways reporting every 5 minutes, each report
ROWS_PER_REPORT count rows (registrations seen, unregistered /24s, the rest by protocol and
verdict), with the cardinalities of a national registry. Prints bytes per row and per report,
the write time, and each query's time on DuckDB over that day; docs/scaling.md extrapolates.
Compared in the same run: the same rows as CSV (what a naive export would write).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import tempfile
import time
import uuid
from pathlib import Path

from bench.report import write_section
from vpnreg.analytics import duckdb_runner
from vpnreg.analytics.export import write_partition
from vpnreg.analytics.layout import COUNTS, REPORTS
from vpnreg.analytics.queries import QUERIES

GATEWAYS = 100
REPORTS_PER_DAY = 288  # every 5 minutes
ROWS_PER_REPORT = 40
REGISTRATIONS = 20_000
PREFIXES = 50_000
PROTOCOLS = ("wireguard", "openvpn", "ipsec", "ssl-vpn", "pptp", "l2tp")
DAY = dt.date(2026, 6, 1)
SESSION = "ab" * 16


def synthetic_day(rng: random.Random) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    counts: list[tuple[object, ...]] = []
    reports: list[tuple[object, ...]] = []
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    for g in range(GATEWAYS):
        gateway = f"gw-{g:04d}"
        for n in range(REPORTS_PER_DAY):
            sent = start + dt.timedelta(minutes=5 * n, seconds=rng.randrange(60))
            hour = sent.replace(minute=0, second=0)
            serial = 1000 + n // 12 - (rng.random() < 0.05) * rng.randrange(1, 20)
            report_id = uuid.UUID(int=rng.getrandbits(128)).hex
            feed = ("nftables", SESSION, serial, f"{serial:064x}")
            reports.append((gateway, report_id, sent, sent, *feed))
            for r in range(ROWS_PER_REPORT):
                protocol = rng.choice(PROTOCOLS)
                if r < 25:
                    verdict = "registered" if rng.random() < 0.97 else "unregistered"
                    key: tuple[object, ...] = (verdict, rng.randrange(1, REGISTRATIONS), None)
                elif r < 35:
                    prefix = f"10.{rng.randrange(PREFIXES) // 256}.{rng.randrange(256)}.0/24"
                    key = ("unregistered", None, prefix)
                else:
                    key = (rng.choice(("not-domestic", "unconfirmed")), None, None)
                flows = rng.randrange(1, 200)
                counts.append((gateway, report_id, hour, protocol, *key, flows, *feed))
    return counts, reports


def _csv_size(rows: list[tuple[object, ...]]) -> int:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return len(out.getvalue().encode())


def main() -> None:
    rng = random.Random(19)
    counts, reports = synthetic_day(rng)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        write_partition(
            root, COUNTS, DAY, [counts[i : i + 50_000] for i in range(0, len(counts), 50_000)]
        )
        write_partition(root, REPORTS, DAY, [reports])
        wrote = time.perf_counter() - started
        count_bytes = COUNTS.partition_file(root, DAY).stat().st_size
        report_bytes = REPORTS.partition_file(root, DAY).stat().st_size
        csv_bytes = _csv_size(counts)
        timings = []
        for name, query in sorted(QUERIES.items()):
            started = time.perf_counter()
            result = duckdb_runner.run(query, data=root)
            timings.append((name, time.perf_counter() - started, len(result.rows)))
    per_row = count_bytes / len(counts)
    per_report = (count_bytes + report_bytes) / len(reports)
    lines.append(
        f"One synthetic day: {GATEWAYS} gateways x {REPORTS_PER_DAY} reports x "
        f"{ROWS_PER_REPORT} count rows = {len(counts):,} count rows, {len(reports):,} reports "
        f"(uuid report ids, {REGISTRATIONS:,} registrations, {PREFIXES:,} /24s, 6 protocols)."
    )
    lines.append("")
    lines.append("| file | bytes | bytes per row |")
    lines.append("| --- | --- | --- |")
    lines.append(f"| counts, Parquet (zstd) | {count_bytes:,} | {per_row:.1f} |")
    lines.append(f"| counts, CSV (compared) | {csv_bytes:,} | {csv_bytes / len(counts):.1f} |")
    lines.append(
        f"| reports, Parquet (zstd) | {report_bytes:,} | {report_bytes / len(reports):.1f} |"
    )
    lines.append("")
    lines.append(
        f"Per report (its count rows and its own row): {per_report:,.0f} bytes. "
        f"Written by `write_partition` in {wrote:.1f} s (both files)."
    )
    lines.append("")
    lines.append("| query on DuckDB over this day | seconds | rows |")
    lines.append("| --- | --- | --- |")
    lines.extend(f"| {name} | {seconds:.2f} | {rows} |" for name, seconds, rows in timings)
    body = "\n".join(lines)
    print(body)
    write_section("analytics", "Analytics files: size per row, DuckDB over one day", body)


if __name__ == "__main__":
    main()
