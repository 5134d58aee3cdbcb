"""bench.bench_lookup_load: reading wrk's report, and the request script it runs."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from bench.bench_lookup_load import ADDRESSES, BLOCKS, _ms, _script, parse

#: A report of wrk 4.1 with --latency, as Debian's build prints it.
REPORT = """Running 15s test @ http://127.0.0.1:40111
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    30.12ms   10.03ms 120.50ms   80.00%
    Req/Sec     1.07k   100.00     1.20k    70.00%
  Latency Distribution
     50%   28.40ms
     75%   33.00ms
     90%   40.00ms
     99%    1.25s
  16200 requests in 15.01s, 5.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 9000
Requests/sec:   1079.28
Transfer/sec:    341.00KB
"""


def test_a_wrk_report_gives_rate_percentiles_404s_and_errors() -> None:
    run = parse("SQLite", "in-memory index", 32, REPORT)
    assert (run.requests, run.rps, run.not_found, run.errors) == (16200, 1079.28, 9000, 5)
    assert (run.p50_ms, run.p99_ms) == (28.4, 1250.0)


@pytest.mark.parametrize(
    ("text", "ms"), [("850.00us", 0.85), ("28.40ms", 28.4), ("1.25s", 1250.0), ("2.00m", 120000.0)]
)
def test_latencies_in_every_unit_become_milliseconds(text: str, ms: float) -> None:
    assert _ms(text) == pytest.approx(ms)


def test_a_report_without_figures_is_refused() -> None:
    with pytest.raises(ValueError, match="in wrk output"):
        parse("SQLite", "x", 1, "unable to connect to 127.0.0.1:1 Connection refused\n")


def test_the_script_asks_for_fixed_addresses_inside_the_demo_blocks(tmp_path: Path) -> None:
    first = _script(tmp_path / "a.lua").read_text()
    assert first == _script(tmp_path / "b.lua").read_text()  # fixed seed
    addresses = re.findall(r'"([0-9.]+)"', first)
    assert len(addresses) == ADDRESSES
    assert all(any(ipaddress.ip_address(a) in block for block in BLOCKS) for a in addresses)
    assert '"/api/v1/ip/" .. addresses[i]' in first
