"""Gateway reports at national scale (issue 19): 1,000 gateways reporting every 5 minutes
against PostgreSQL; the time to ingest a report, and the statistics page's render time after
30 days of reports.

Set-up (timed, not part of the figures): a throwaway PostgreSQL cluster, the schema, and the
history generated in SQL (generate_series), as the agent would have sent it: one report per
gateway every 5 minutes for BENCH_REPORTS_DAYS (30) days, each with COUNT_ROWS hourly count
rows (a registered WireGuard count, unregistered OpenVPN and IPsec counts of two domestic /24s,
and an unconfirmed one), feed serials that advance by the hour with a tenth of the gateways a
few serials behind; the history is generated at migration 0013 and then the database is
upgraded, so migration 0014 fills the daily rollups from it (timed). Then the figures' queries
alone (services.stats.statistics, in process, over the page's 90 days), and `vpnreg serve` in
its own process (PostgreSQL, defaults):

- ingest: every gateway POSTs one real report (`/api/v1/gateway-reports`, a gateway token, the
  agent's body shape) from BENCH_REPORTS_CLIENTS (16) concurrent clients; per report the time
  to its 201, and reports per second;
- statistics: GET /stats (the public page with its five server-drawn charts over 90 days),
  the first time (nothing cached), then again after each of a few new reports (the figures
  changed, so the charts are drawn again); and GET /stats.json.

Sizes: BENCH_REPORTS_GATEWAYS (1000), BENCH_REPORTS_DAYS (30).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import text

from bench.bench_portal_load import postgres_cluster
from bench.bench_writes import _env, vpnreg_serve
from bench.report import write_section
from vpnreg.core.statistics import trailing_days
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.services.stats import statistics
from vpnreg.web.portal.public import PAGE_DAYS

GATEWAYS = int(os.environ.get("BENCH_REPORTS_GATEWAYS", "1000"))
DAYS = int(os.environ.get("BENCH_REPORTS_DAYS", "30"))
CLIENTS = int(os.environ.get("BENCH_REPORTS_CLIENTS", "16"))
RENDERS = 5
INTERVAL_MIN = 5
COUNT_ROWS = 4
#: The count rows of every generated report: (protocol, verdict, registration id, prefix).
ROWS = (
    ("wireguard", "registered", 1, None),
    ("openvpn", "unregistered", None, "198.51.100.0/24"),
    ("ipsec", "unregistered", None, "203.0.113.0/24"),
    ("openvpn", "unconfirmed", None, None),
)
assert len(ROWS) == COUNT_ROWS


def generate_history(url: str, now: dt.datetime) -> dict[str, float]:
    """Reports and counts of DAYS days, straight into the tables (SQL, server-side)."""
    engine = make_engine(url)
    start = now - dt.timedelta(days=DAYS)
    steps = DAYS * 24 * 60 // INTERVAL_MIN
    figures: dict[str, float] = {}
    with engine.begin() as conn:
        began = time.perf_counter()
        conn.execute(
            text(
                """
                INSERT INTO gateway_reports (report_id, gateway_id, token_name, created,
                    received_at, mode, feed_session, feed_serial, set_hash)
                SELECT md5(g::text || ':' || k::text), 'gw-' || lpad(g::text, 4, '0'), 'bench',
                       :start + k * interval '5 minutes', :start + k * interval '5 minutes',
                       'nftables', 'bench-session',
                       greatest(1, 1 + k / 12 - CASE WHEN g % 10 = 0 THEN 3 ELSE 0 END),
                       repeat('0', 64)
                FROM generate_series(0, :gateways - 1) AS g,
                     generate_series(0, :steps - 1) AS k
                """
            ),
            {"start": start, "gateways": GATEWAYS, "steps": steps},
        )
        figures["reports_s"] = time.perf_counter() - began
        began = time.perf_counter()
        values = ", ".join(
            f"('{p}', '{v}', {'NULL' if r is None else r}, {'NULL' if x is None else repr(x)})"
            for p, v, r, x in ROWS
        )
        conn.execute(
            text(
                f"""
                INSERT INTO gateway_report_counts (report_id, hour, protocol, verdict,
                    registration_id, prefix, flows)
                SELECT r.id, date_trunc('hour', r.created), c.protocol, c.verdict,
                       c.registration_id, c.prefix, 1 + (r.id % 7)
                FROM gateway_reports AS r
                CROSS JOIN (VALUES {values}) AS c(protocol, verdict, registration_id, prefix)
                """
            )
        )
        figures["counts_s"] = time.perf_counter() - began
    began = time.perf_counter()
    upgrade(url)  # 0014: the rollups, filled from the history above
    figures["rollup_s"] = time.perf_counter() - began
    began = time.perf_counter()
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        figures["analyze_s"] = time.perf_counter() - began
        figures["reports"] = float(
            conn.execute(text("SELECT count(*) FROM gateway_reports")).scalar_one()
        )
        figures["counts"] = float(
            conn.execute(text("SELECT count(*) FROM gateway_report_counts")).scalar_one()
        )
        figures["bytes"] = float(
            conn.execute(
                text(
                    "SELECT pg_total_relation_size('gateway_reports')"
                    " + pg_total_relation_size('gateway_report_counts')"
                )
            ).scalar_one()
        )
        figures["rollup_rows"] = float(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM gateway_flow_days)"
                    " + (SELECT count(*) FROM gateway_report_days)"
                )
            ).scalar_one()
        )
    engine.dispose()
    return figures


def report_body(gateway: int, now: dt.datetime) -> dict[str, object]:
    """One report as the agent sends it (agent/reporter.py `_body`)."""
    hour = now.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:00:00Z")
    counts: list[dict[str, object]] = []
    for protocol, verdict, registration, prefix in ROWS:
        row: dict[str, object] = {"hour": hour, "protocol": protocol, "verdict": verdict}
        if registration is not None:
            row["registration_id"] = registration
        if prefix is not None:
            row["prefix"] = prefix
        row["flows"] = 1 + gateway % 7
        counts.append(row)
    return {
        "report_id": uuid.uuid4().hex,
        "gateway_id": f"gw-{gateway:04d}",
        "created": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "mode": "nftables",
        "feed": None,
        "counts": counts,
    }


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    arr = np.array(values) * 1000
    return (
        f"p50 {np.percentile(arr, 50):.0f} ms, p99 {np.percentile(arr, 99):.0f} ms, "
        f"max {arr.max():.0f} ms"
    )


def time_figures(url: str) -> list[float]:
    """The statistics page's figures, queries only (no HTTP, no drawing), RENDERS times."""
    engine = make_engine(url)
    times = []
    with make_session_factory(engine)() as session:
        for _ in range(RENDERS):
            now = dt.datetime.now(dt.UTC)
            began = time.perf_counter()
            statistics(session, period=trailing_days(now, PAGE_DAYS), now=now)
            times.append(time.perf_counter() - began)
            session.rollback()
    engine.dispose()
    return times


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, postgres_cluster() as url:
        work = Path(tmp)
        upgrade(url, "0013")  # the history is generated before the rollups exist
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        engine = make_engine(url)
        with make_session_factory(engine)() as session:
            _, token = services.create_token(
                session, name="bench-gw", role="gateway", actor="cli:admin", now=now
            )
        engine.dispose()
        print(f"generating {DAYS} days of reports from {GATEWAYS} gateways...", flush=True)
        made = generate_history(url, now)
        print(f"  {made}", flush=True)
        queries = time_figures(url)
        print(f"  figures' queries: {_ms(queries)}", flush=True)
        env = _env(url, work)
        with vpnreg_serve(env, work / "serve.log") as server:
            auth = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=server.base, timeout=120) as http:
                # warm the server (imports, pools) with one report and one page
                assert http.post(
                    "/api/v1/gateway-reports", json=report_body(0, now), headers=auth
                ).status_code in (200, 201)

                def send(gateway: int) -> float:
                    began = time.perf_counter()
                    answer = http.post(
                        "/api/v1/gateway-reports",
                        json=report_body(gateway, dt.datetime.now(dt.UTC)),
                        headers=auth,
                    )
                    if answer.status_code != 201:
                        raise RuntimeError(f"report: {answer.status_code} {answer.text[:200]}")
                    return time.perf_counter() - began

                began = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
                    ingest = list(pool.map(send, range(GATEWAYS)))
                ingest_s = time.perf_counter() - began

                def timed(path: str) -> float:
                    started = time.perf_counter()
                    answer = http.get(path)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{path}: {answer.status_code}")
                    return time.perf_counter() - started

                first_page = timed("/stats")
                pages: list[float] = []
                jsons: list[float] = []
                for i in range(RENDERS):
                    send(i)  # the figures change: the charts are drawn again
                    pages.append(timed("/stats"))
                    jsons.append(timed("/stats.json"))
                cached = [timed("/stats") for _ in range(RENDERS)]
    load_after = os.getloadavg()[0]
    ingest_text = (
        f"{GATEWAYS:,} reports in {ingest_s:.1f} s ({GATEWAYS / ingest_s:.0f} reports/s); "
        f"per report {_ms(ingest)}"
    )
    per_report = GATEWAYS * DAYS * 24 * 60 // INTERVAL_MIN
    body = f"""
{GATEWAYS:,} gateways, one report each every {INTERVAL_MIN} minutes for {DAYS} days, generated
in SQL into a throwaway PostgreSQL cluster ({per_report:,} reports, {COUNT_ROWS} hourly count rows
each: {made["reports"]:,.0f} report rows and {made["counts"]:,.0f} count rows,
{made["bytes"] / 2**30:.1f} GiB with indexes; generated in {made["reports_s"]:.0f} s +
{made["counts_s"]:.0f} s, VACUUM ANALYZE {made["analyze_s"]:.0f} s). Migration 0014 then filled
the daily rollups from them in {made["rollup_s"]:.0f} s ({made["rollup_rows"]:,.0f} rollup rows).
Then `vpnreg serve` (one process, defaults) on that database. Load average
{load_before:.1f} before, {load_after:.1f} after (2 cores, shared).

| Step | Figures |
|---|---|
| Ingest: each gateway POSTs one report ({CLIENTS} concurrent clients) | {ingest_text} |
| The figures' queries alone (services.stats.statistics, 90 days, in process) | {_ms(queries)} |
| GET /stats, first (nothing cached) | {first_page * 1000:.0f} ms |
| GET /stats after a new report (figures changed, charts drawn again) | {_ms(pages)} |
| GET /stats unchanged (charts cached) | {_ms(cached)} |
| GET /stats.json after a new report | {_ms(jsons)} |

A national deployment's reports arrive at {GATEWAYS:,} per {INTERVAL_MIN} minutes, that is
{GATEWAYS / (INTERVAL_MIN * 60):.1f} reports/s: the ingest rate above is the headroom.
"""
    write_section("gateway_reports", "Gateway reports: 1,000 gateways, 30 days", body)
    print(body)


if __name__ == "__main__":
    main()
