"""bench.bench_writes: the writers' prefixes, the percentile and the window's figures."""

from __future__ import annotations

import math

import pytest
from bench.bench_writes import (
    Result,
    Sample,
    log_summary,
    percentile,
    prefix_pool,
    share,
    summarise,
    unusual_log_lines,
    verdict,
)


def test_the_pool_is_every_documentation_address_as_a_32_once() -> None:
    pool = prefix_pool()
    assert len(pool) == len(set(pool)) == 768
    assert pool[0] == "198.51.100.0/32"
    assert pool[-1] == "192.0.2.255/32"


@pytest.mark.parametrize("clients", [1, 5, 20])
def test_clients_get_disjoint_shares_covering_the_pool(clients: int) -> None:
    pool = prefix_pool()
    shares = [share(pool, clients, i) for i in range(clients)]
    assert sorted(p for s in shares for p in s) == sorted(pool)
    assert all(len(s) >= len(pool) // clients for s in shares)


def test_a_share_outside_the_clients_is_refused() -> None:
    with pytest.raises(ValueError, match="client 3 of 3"):
        share(["a", "b", "c"], 3, 3)
    with pytest.raises(ValueError, match="cannot share"):
        share(["a"], 2, 0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7
    assert percentile(list(reversed(values)), 1) == 1
    assert math.isnan(percentile([], 50))


def test_summarise_counts_what_ended_inside_the_window() -> None:
    samples = [
        Sample("create", 0.5, 1.5, 201),  # ended inside: counts
        Sample("submit", 1.5, 1.6, 200),
        Sample("create", 1.6, 1.7, 201),
        Sample("submit", 1.7, 3.2, 200),  # ended after the window: not counted
        Sample("create", 0.1, 0.9, 201),  # ended before the window (warm-up)
        Sample("lookup", 1.0, 1.1, 404),
        Sample("lookup", 1.1, 1.2, 200),
        Sample("lookup", 1.2, 1.3, 500, "boom"),
        Sample("create", 2.0, 2.5, 409, "conflict"),
        Sample("submit", 2.5, 2.6, 0, "ReadTimeout"),
    ]
    result = summarise("SQLite", 1, samples, (1.0, 3.0), (0.5, 0.9))
    assert result.seconds == 2.0
    assert result.applications == 1
    assert result.applications_per_s == 0.5
    assert result.write_requests == 5
    assert result.write_errors == 2
    assert result.lookups == 3
    assert result.lookup_errors == 1
    assert result.lookups_per_s == 1.5
    assert result.write_max == pytest.approx(1000)
    assert result.failures == ("lookup 500: boom", "create 409: conflict", "submit 0: ReadTimeout")


def test_summarise_of_lookups_alone_has_no_write_figures() -> None:
    result = summarise("SQLite", 0, [Sample("lookup", 0.0, 0.01, 200)], (0.0, 1.0), (0.1, 0.2))
    assert result.applications == 0
    assert math.isnan(result.write_p99)
    assert result.lookup_p99 == pytest.approx(10)


SERVER_LOG = """\
vpnreg: serving on http://127.0.0.1:8000
INFO:     Started server process [42]
INFO:     Waiting for application startup.
INFO:     Application startup complete.
INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)
INFO:     127.0.0.1:50000 - "GET /api/v1/ip/192.0.2.1 HTTP/1.1" 404 Not Found
INFO:     127.0.0.1:50001 - "POST /api/v1/applications HTTP/1.1" 201 Created
INFO:     127.0.0.1:50002 - "POST /api/v1/applications/7/submit HTTP/1.1" 409 Conflict
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "app.py", line 1, in run
    raise RuntimeError("boom")
RuntimeError: boom
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "app.py", line 1, in run
RuntimeError: boom
INFO:     Shutting down
INFO:     Finished server process [42]
"""


def test_the_unusual_log_lines_are_failures_and_tracebacks_counted() -> None:
    found = unusual_log_lines(SERVER_LOG)
    assert found == {
        'INFO:     127.0.0.1:50002 - "POST /api/v1/applications/7/submit HTTP/1.1" 409 Conflict': 1,
        "ERROR:    Exception in ASGI application": 2,
        "Traceback (most recent call last):": 2,
        "RuntimeError: boom": 2,
    }
    assert log_summary(found, most=2) == (
        "2 x `ERROR:    Exception in ASGI application`, "
        "2 x `Traceback (most recent call last):` and 2 other lines"
    )
    assert log_summary(unusual_log_lines(SERVER_LOG.split("INFO:     127.0.0.1:50002")[0])) == (
        "none"
    )


def _result(backend: str, writers: int, lookup_p99: float, errors: int = 0) -> Result:
    sample = Sample("lookup", 0.0, lookup_p99 / 1000, 200)
    failed = [Sample("create", 0.0, 0.1, 500, "boom")] * errors
    return summarise(backend, writers, [sample, *failed], (0.0, 10.0), (0.1, 0.5))


def test_the_verdict_names_the_configurations_that_miss_the_target() -> None:
    results = [
        _result("SQLite", 0, 900.0),  # lookups alone: not judged
        _result("SQLite", 1, 100.0),
        _result("SQLite", 20, 300.0, errors=2),
        _result("PostgreSQL", 20, 250.0),
    ]
    assert verdict(results) == (
        "Target (issue 14: lookups p99 < 250 ms while writers run, every request answered): "
        "NOT met with SQLite 20 writers (300 ms), PostgreSQL 20 writers (250 ms); met in the "
        "other configurations. Failed requests: 2."
    )
    assert verdict(results[:2]) == (
        "Target (issue 14: lookups p99 < 250 ms while writers run, every request answered): "
        "met in every configuration (worst lookup p99 100 ms). Failed requests: 0."
    )
