"""The statistics' review figures at national scale: registrations in force, review turnaround
and decision shares over the page's 90 days, on PostgreSQL, with BENCH_REVIEWS_APPLICATIONS
(200,000) applications of 4 review steps each (submit, verify, endorse, approve) spread over two
years, generated in SQL. Unlike the gateway figures (bench_gateway_reports, which read daily
rollups), these read the review steps: in force every step into or out of force up to the
period's end, the turnaround the decision steps of the period with their previous step.
Each query is timed alone, best of 3, in process (services.stats's private helpers).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable

from sqlalchemy import text

from bench.bench_portal_load import postgres_cluster
from bench.report import write_section
from vpnreg.core.statistics import trailing_days
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.services import stats
from vpnreg.web.portal.public import PAGE_DAYS

APPLICATIONS = int(os.environ.get("BENCH_REVIEWS_APPLICATIONS", "200000"))
SPREAD_DAYS = 730
STEPS = (
    ("submit", "draft", "submitted", 0),
    ("verify", "submitted", "isp_verified", 5),
    ("endorse", "isp_verified", "sector_endorsed", 30),
    ("approve", "sector_endorsed", "active", 60),
)


def generate(url: str, now: dt.datetime) -> None:
    engine = make_engine(url)
    steps = ", ".join(f"('{a}', '{f}', '{t}', {h})" for a, f, t, h in STEPS)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organisations (id, name, category, created_at) "
                "VALUES (1, 'bench', 'bank', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text("INSERT INTO isps (id, name, created_at) VALUES (1, 'bench', :now)"),
            {"now": now},
        )
        conn.execute(
            text(
                """
                INSERT INTO applications (id, organisation_id, isp_id, category, bound_to,
                    protocols, state, version, created_by, created_at, updated_at)
                SELECT g, 1, 1, (ARRAY['bank', 'software_house', 'call_centre'])[1 + g % 3],
                       'prefixes', '[]', 'active', 4, 'bench',
                       :now - (g % :spread) * interval '1 day', :now
                FROM generate_series(1, :n) AS g
                """
            ),
            {"now": now, "n": APPLICATIONS, "spread": SPREAD_DAYS},
        )
        conn.execute(
            text(
                f"""
                INSERT INTO reviews (application_id, actor, action, from_state, to_state,
                    created_at)
                SELECT g, 'bench', s.action, s.f, s.t,
                       :now - (g % :spread) * interval '1 day' + s.h * interval '1 hour'
                FROM generate_series(1, :n) AS g
                CROSS JOIN (VALUES {steps}) AS s(action, f, t, h)
                """
            ),
            {"now": now, "n": APPLICATIONS, "spread": SPREAD_DAYS},
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()


def main() -> None:
    load_before = os.getloadavg()[0]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    period = trailing_days(now, PAGE_DAYS)
    days = period.days()
    timings: dict[str, float] = {}
    with postgres_cluster() as url:
        upgrade(url)
        generate(url, now)
        engine = make_engine(url)
        with make_session_factory(engine)() as session:
            queries: dict[str, Callable[[], object]] = {
                "Registrations in force (90 days)": lambda: stats._in_force(session, period, days),
                "Review turnaround": lambda: stats._turnaround(session, period),
                "Decision shares": lambda: stats._shares(session, period),
            }
            for name, run in queries.items():
                best = float("inf")
                for _ in range(3):
                    began = time.perf_counter()
                    run()
                    best = min(best, time.perf_counter() - began)
                timings[name] = best
        engine.dispose()
    load_after = os.getloadavg()[0]
    rows = "\n".join(f"| {name} | {s * 1000:.0f} ms |" for name, s in timings.items())
    body = f"""
{APPLICATIONS:,} applications in force, {len(STEPS)} review steps each
({APPLICATIONS * len(STEPS):,} review rows) spread over {SPREAD_DAYS} days, generated in SQL into
a throwaway PostgreSQL cluster; each figure's query and its reshaping in Python, best of 3.
Load average {load_before:.1f} before, {load_after:.1f} after (2 cores, shared).

| Figure | Time |
|---|---|
{rows}

These grow with the applications (in force: every step into or out of force ever taken; the
turnaround: the decisions of the period, each with its previous step), not with gateway
reports; the turnaround's percentiles are taken in Python from every decision of the period.
"""
    write_section("statistics_reviews", "Statistics: review figures at 200,000 applications", body)
    print(body)


if __name__ == "__main__":
    main()
