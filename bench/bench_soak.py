"""Soak: 50 locust clients for 10 minutes against `vpnreg serve` (as a user starts it, with its
client limits) over a throwaway PostgreSQL cluster filled by `vpnreg demo`: errors (target 0),
p50/p99 per request kind, and the server's memory over the run (target: flat).

The scenario is the portal load mix (bench/locustfile.py; sign-ins, the locust run and the
cluster come from bench/bench_portal_load.py). The server's resident memory is sampled every
5 s; growth is measured from the end of the first sixth of the run (caches and pools filled) to
the end. Environment: BENCH_SOAK_SECONDS (default 600; 60 for a quick run, as CI does).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
from tests.concurrency.server import serve_process

from bench import bench_portal_load as load
from bench.report import write_section

SECONDS = int(os.environ.get("BENCH_SOAK_SECONDS", "600"))
SAMPLE_EVERY_S = 5.0
#: Growth after the warm-up below this share of the warm figure counts as flat.
FLAT_SHARE = 0.10


def _rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _sample(pid: int, samples: list[tuple[float, float]], stop: threading.Event) -> None:
    started = time.monotonic()
    while not stop.wait(SAMPLE_EVERY_S):
        samples.append((time.monotonic() - started, _rss_mib(pid)))


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="vpnreg-bench-soak-") as tmp,
        load.postgres_cluster() as url,
    ):
        workdir = Path(tmp)
        data_dir = workdir / "data"
        data_dir.mkdir()
        env = load._env(url, data_dir)
        load._vpnreg(env, "db", "upgrade", cwd=workdir)
        load._vpnreg(env, "demo", cwd=workdir)
        with serve_process(url, data_dir) as (base, process):
            sessions = workdir / "sessions.json"
            load.sign_in_all(base, sessions)
            before = _rss_mib(process.pid)
            samples: list[tuple[float, float]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=_sample, args=(process.pid, samples, stop))
            sampler.start()
            # run_locust takes the run's length from its module.
            load.SECONDS = SECONDS
            try:
                rows = load.run_locust(base, workdir, sessions)
            finally:
                stop.set()
                sampler.join()
            after = _rss_mib(process.pid)
    warm_at = SECONDS / 6
    warm = next((mib for at, mib in samples if at >= warm_at), before)
    peak = max((mib for _, mib in samples), default=after)
    growth = after - warm
    total = next(r for r in rows if r.name == "Aggregated")
    flat = growth < FLAT_SHARE * warm
    verdict = (
        f"Errors: {total.failures} of {total.requests} requests (target 0: "
        f"{'met' if total.failures == 0 else 'NOT met'}). p99 over all requests "
        f"{total.p99:.0f} ms. Server memory (RSS): {before:.0f} MiB after the sign-ins, "
        f"{warm:.0f} MiB after {warm_at:.0f} s, {after:.0f} MiB at the end (peak {peak:.0f}); "
        f"growth after warm-up {growth:+.0f} MiB (target flat, under "
        f"{FLAT_SHARE:.0%}: {'met' if flat else 'NOT met'})."
    )
    load._print(f"soak, {SECONDS} s", rows)
    print("\n" + verdict)
    curve = ", ".join(f"{at:.0f} s {mib:.0f}" for at, mib in samples[:: max(1, len(samples) // 12)])
    body = "\n\n".join(
        [
            f"{load.USERS} locust clients for {SECONDS} s (the portal load mix: think time "
            "0.5-1.5 s, lookups, list pages, create + submit through the API; statistics reset "
            "once all users run) against one `vpnreg serve` process (its default client "
            "limits, access log on) on 127.0.0.1 over a throwaway PostgreSQL cluster (durable "
            "settings) filled by `vpnreg demo`. Client and server are not pinned; other work on "
            "the machine is not stopped. Run: `python -m bench.all bench_soak` "
            "(`BENCH_SOAK_SECONDS=60` for the short run).",
            verdict,
            f"Memory samples (s, MiB): {curve}.",
            load.table("PostgreSQL, soak", rows),
        ]
    )
    write_section("soak", f"Soak: 50 clients for {SECONDS} s on PostgreSQL", body)


if __name__ == "__main__":
    main()
