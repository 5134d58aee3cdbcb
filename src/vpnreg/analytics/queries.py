"""The common questions asked of the gateway reports, as SQL text run unchanged by DuckDB (one
machine, `vpnreg analytics`) and by Spark SQL (a cluster, `spark_job`).

The text keeps to what both dialects share: SELECT with WITH, JOIN, GROUP BY, SUM/MIN/MAX/COUNT,
CASE, `DATE 'YYYY-MM-DD'` literals, BETWEEN. Where a construct differs between the two, it goes
into DIALECTS under a placeholder name; none of today's queries needs one, and a test runs
every query on both engines over the same files and compares the answers.

Each query reads the views `counts` and `reports` (vpnreg.analytics.layout), and restricts the
partition column `day` to [{first_day}, {last_day}] so that both engines read only those days'
files. Results are ordered, and every output column has a name of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vpnreg.core.gateway_report import BLOCKED_VERDICT

#: Engines the text is rendered for.
ENGINES = ("duckdb", "spark")
#: Per placeholder, its text in each engine's dialect (empty today: every query is common SQL).
DIALECTS: dict[str, dict[str, str]] = {}
#: The bounds used when a query is asked for every day.
FIRST_DAY = dt.date(1970, 1, 1)
LAST_DAY = dt.date(9999, 12, 31)


@dataclass(frozen=True)
class Query:
    name: str
    #: One line for the command's help.
    summary: str
    sql: str

    def render(self, *, engine: str, first_day: dt.date, last_day: dt.date) -> str:
        """The SQL for `engine` over the days first_day..last_day (both included)."""
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}")
        words = {name: texts[engine] for name, texts in DIALECTS.items()}
        return self.sql.format(
            first_day=_date(first_day),
            last_day=_date(last_day),
            blocked=sql_string(BLOCKED_VERDICT),
            **words,
        )


def _date(day: dt.date) -> str:
    # a date object, never user text: nothing but digits and dashes reaches the SQL
    return f"DATE '{day.isoformat()}'"


def sql_string(value: str) -> str:
    """`value` as an SQL string literal. The two dialects escape a quote differently (DuckDB
    doubles it, Spark takes a backslash), so a value needing an escape is refused."""
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r}: no literal with a quote or backslash in the common SQL")
    return f"'{value}'"


BLOCKS_PER_PROTOCOL = Query(
    "blocks-per-protocol",
    "Blocked VPN flows per protocol per day (dry-run gateways: flows they would have blocked).",
    """
SELECT day, protocol, SUM(flows) AS blocked_flows, COUNT(DISTINCT gateway_id) AS gateways
FROM counts
WHERE verdict = {blocked} AND day BETWEEN {first_day} AND {last_day}
GROUP BY day, protocol
ORDER BY day, protocol
""",
)

REGISTERED_BUT_BLOCKED = Query(
    "registered-but-blocked",
    "Flows of registered ids that got a block verdict, per registration and gateway, with the "
    "feed serials the gateway applied meanwhile.",
    """
SELECT
    registration_id,
    gateway_id,
    SUM(flows) AS blocked_flows,
    MIN(day) AS first_day,
    MAX(day) AS last_day,
    MIN(feed_serial) AS lowest_serial,
    MAX(feed_serial) AS highest_serial,
    SUM(CASE WHEN mode = 'dry-run' THEN flows ELSE 0 END) AS dry_run_flows
FROM counts
WHERE registration_id IS NOT NULL
    AND verdict = {blocked}
    AND day BETWEEN {first_day} AND {last_day}
GROUP BY registration_id, gateway_id
ORDER BY registration_id, gateway_id
""",
)

GATEWAY_LAG = Query(
    "gateway-lag",
    "Per gateway and day: the feed serials it applied, against the newest serial any gateway "
    "reported in the same feed session that day.",
    """
WITH applied AS (
    SELECT
        day,
        gateway_id,
        feed_session,
        COUNT(*) AS reports,
        MIN(feed_serial) AS lowest_serial,
        MAX(feed_serial) AS highest_serial
    FROM reports
    WHERE day BETWEEN {first_day} AND {last_day}
    GROUP BY day, gateway_id, feed_session
),
newest AS (
    SELECT day, feed_session, MAX(highest_serial) AS newest_serial
    FROM applied
    WHERE feed_session IS NOT NULL
    GROUP BY day, feed_session
)
SELECT
    a.day AS day,
    a.gateway_id AS gateway_id,
    a.feed_session AS feed_session,
    a.reports AS reports,
    a.lowest_serial AS lowest_serial,
    a.highest_serial AS highest_serial,
    n.newest_serial AS newest_serial,
    n.newest_serial - a.highest_serial AS lag
FROM applied a
LEFT JOIN newest n ON n.day = a.day AND n.feed_session = a.feed_session
ORDER BY day, gateway_id, feed_session NULLS LAST
""",
)

#: Every query by its name (the `vpnreg analytics` subcommand).
QUERIES = {q.name: q for q in (BLOCKS_PER_PROTOCOL, REGISTERED_BUT_BLOCKED, GATEWAY_LAG)}
