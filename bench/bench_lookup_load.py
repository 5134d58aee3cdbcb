"""The public lookup at saturation: `wrk` (Debian) drives GET /api/v1/ip/{address} with no think
time from 1, 8 and 32 connections against `vpnreg serve` (one worker: the target is per worker;
`--workers N`, ADR 0016, runs N) on 127.0.0.1, over a registry filled by `vpnreg demo`, first
on SQLite, then on a throwaway PostgreSQL cluster; each with the lookup answered by SQL per
request (VPNREG_LOOKUP_INDEX=0, the path before ADR 0014) and from the in-memory index of the
feed's registered set (the default).

Addresses are drawn (fixed seed) from the three documentation /24s the demo registers /28s in,
so some are registered (200) and most are not (404), as in bench_portal_load's lookups.
Target (issue 18): at least 2,000 requests/s per worker with p99 under 50 ms at 32 clients.
Environment: BENCH_LOOKUP_SECONDS (default 15) for each measured run, after a 3 s warm-up.

On a machine with two cores or more, wrk is pinned to the first core and the one-worker server to
the second (taskset); PostgreSQL is not pinned. Then `--workers 2` and `--workers <all cores>`
with the index, at 32 clients, the server not pinned (its workers share the cores with wrk).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.bench_portal_load import (
    CLIENT_CPU,
    PIN,
    SERVER_CPU,
    VENV_BIN,
    _env,
    _pinned,
    _vpnreg,
    postgres_cluster,
)
from bench.report import write_section
from bench.serving import vpnreg_serve

SECONDS = int(os.environ.get("BENCH_LOOKUP_SECONDS", "15"))
WARM_UP_SECONDS = 3
CLIENTS = (1, 8, 32)
TARGET_RPS = 2000.0
TARGET_P99_MS = 50.0
SEED = 20261204
ADDRESSES = 4000
BLOCKS = [ipaddress.ip_network(b) for b in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Run:
    backend: str
    path: str
    clients: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    not_found: int
    errors: int


def _script(path: Path) -> Path:
    """A wrk Lua script asking for the addresses in turn (each connection from its own start)."""
    rng = random.Random(SEED)
    addresses = []
    for _ in range(ADDRESSES):
        block = rng.choice(BLOCKS)
        addresses.append(str(block[rng.randrange(block.num_addresses)]))
    listing = ",".join(f'"{a}"' for a in addresses)
    path.write_text(
        f"local addresses = {{{listing}}}\n"
        "local i = 0\n"
        "function init(args) i = math.random(#addresses) end\n"
        "function request()\n"
        "  i = i % #addresses + 1\n"
        '  return wrk.format("GET", "/api/v1/ip/" .. addresses[i])\n'
        "end\n"
    )
    return path


@contextlib.contextmanager
def serve(env: dict[str, str], cwd: Path, workers: int = 1) -> Iterator[str]:
    """One worker pinned to the server's core; several share every core (wrk's included)."""
    prefix = _pinned(SERVER_CPU) if workers == 1 else []
    args = ["--workers", str(workers)] if workers > 1 else []
    log = cwd / "serve.log"
    with vpnreg_serve(VENV_BIN / "vpnreg", env, log, cwd=cwd, prefix=prefix, args=args) as served:
        yield served.base


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def wrk(base: str, script: Path | None, clients: int, seconds: int) -> str:
    """wrk's report; with `script` the lookups, without it GET /healthz."""
    done = subprocess.run(
        [
            *_pinned(CLIENT_CPU),
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            *(["-s", str(script), base] if script is not None else [f"{base}/healthz"]),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    return done.stdout


def parse(backend: str, path: str, clients: int, out: str) -> Run:
    def find(pattern: str) -> str:
        match = re.search(pattern, out)
        if match is None:
            raise ValueError(f"no {pattern!r} in wrk output:\n{out}")
        return match.group(1)

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return Run(
        backend=backend,
        path=path,
        clients=clients,
        requests=int(find(r"(\d+) requests in")),
        rps=float(find(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(find(r"\s50%\s+(\S+)")),
        p99_ms=_ms(find(r"\s99%\s+(\S+)")),
        not_found=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in socket_errors.groups()) if socket_errors else 0,
    )


#: Worker counts beyond one: 2 and all cores (the same on a 2-core machine).
WORKERS = sorted({2, os.cpu_count() or 2})


def measure(backend: str, url: str, workdir: Path, script: Path) -> list[Run]:
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _env(url, data_dir)
    _vpnreg(env, "db", "upgrade", cwd=workdir)
    _vpnreg(env, "demo", cwd=workdir)
    runs: list[Run] = []
    for path, index in (("SQL per request", "0"), ("in-memory index", "1")):
        with serve({**env, "VPNREG_LOOKUP_INDEX": index}, workdir) as base:
            wrk(base, script, 8, WARM_UP_SECONDS)
            for clients in CLIENTS:
                run = parse(backend, path, clients, wrk(base, script, clients, SECONDS))
                print(
                    f"{backend:10} {path:16} {clients:3d} clients: {run.rps:8.1f} req/s "
                    f"p50 {run.p50_ms:6.1f} ms p99 {run.p99_ms:6.1f} ms "
                    f"({run.not_found} of {run.requests} 404, {run.errors} socket errors)"
                )
                runs.append(run)
            if index == "1":
                # the ceiling of this stack: /healthz, which answers from no data at all
                run = parse(backend, "`/healthz` (ceiling)", 32, wrk(base, None, 32, SECONDS))
                print(f"{backend:10} /healthz          32 clients: {run.rps:8.1f} req/s")
                runs.append(run)
    for workers in WORKERS:
        # `--workers N` (ADR 0016): the same index in every worker, the server not pinned
        with serve({**env, "VPNREG_LOOKUP_INDEX": "1"}, workdir, workers) as base:
            wrk(base, script, 32, WARM_UP_SECONDS)
            path = f"in-memory index, {workers} workers"
            run = parse(backend, path, 32, wrk(base, script, 32, SECONDS))
            print(f"{backend:10} {path} 32 clients: {run.rps:8.1f} req/s p99 {run.p99_ms:.1f} ms")
            runs.append(run)
    return runs


def table(runs: list[Run]) -> str:
    lines = [
        "| backend | answered by | clients | requests | req/s | p50 ms | p99 ms | 404 share "
        "| socket errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        share = r.not_found / r.requests if r.requests else 0.0
        lines.append(
            f"| {r.backend} | {r.path} | {r.clients} | {r.requests} | {r.rps:.0f} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {share:.0%} | {r.errors} |"
        )
    return "\n".join(lines)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_lookup_load: wrk is missing (scripts/system-deps.sh --bench)")
    load_before = _load()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="vpnreg-bench-lookup-") as tmp:
        script = _script(Path(tmp) / "lookup.lua")
        sqlite_dir = Path(tmp) / "sqlite"
        sqlite_dir.mkdir()
        runs += measure("SQLite", f"sqlite:///{sqlite_dir / 'registry.db'}", sqlite_dir, script)
        with postgres_cluster() as pg_url:
            pg_dir = Path(tmp) / "pg"
            pg_dir.mkdir()
            runs += measure("PostgreSQL", pg_url, pg_dir, script)
    load_after = _load()
    verdicts = []
    for backend in ("SQLite", "PostgreSQL"):
        at32 = next(
            r for r in runs if (r.backend, r.path, r.clients) == (backend, "in-memory index", 32)
        )
        met = at32.rps >= TARGET_RPS and at32.p99_ms < TARGET_P99_MS
        verdicts.append(
            f"{backend}: {'met' if met else 'NOT met'} ({at32.rps:.0f} req/s, "
            f"p99 {at32.p99_ms:.1f} ms at 32 clients)"
        )
    verdict = (
        f"Target (at least {TARGET_RPS:.0f} requests/s per worker with p99 under "
        f"{TARGET_P99_MS:.0f} ms at 32 concurrent clients, in-memory index): "
        + "; ".join(verdicts)
        + "."
    )
    print("\n" + verdict)
    placement = (
        f"wrk pinned to core {CLIENT_CPU} and the one-worker server to core {SERVER_CPU} "
        "(taskset); the rows with several workers: the server not pinned, sharing every core "
        "with wrk; PostgreSQL not pinned"
        if PIN
        else "client and server share the machine's cores (no taskset or one core)"
    )
    body = "\n\n".join(
        [
            "`wrk -t1 -c{1,8,32} --latency` (Debian's wrk 4.1, no think time: each connection "
            "sends its next request when the answer arrives) against `vpnreg serve` with one "
            "worker (uvicorn, uvloop, httptools; the per-worker figure the target names: "
            "`--workers N` runs N such processes on one port, ADR 0016) on 127.0.0.1, "
            f"{SECONDS} s per run after a {WARM_UP_SECONDS} s warm-up, over "
            "a registry filled by `vpnreg demo` (206 applications). Each request asks "
            "`GET /api/v1/ip/{address}` for the next of 4,000 addresses drawn with a fixed "
            "seed from the documentation /24s the demo registers /28s in (most answer 404, "
            "not registered: the 404 share is in the table). Before: "
            "`VPNREG_LOOKUP_INDEX=0`, one SQL query per lookup in the threadpool (as before "
            "ADR 0014); after: the in-memory index of the feed's registered set (on the event "
            "loop, no database session). The `/healthz` row is the ceiling of the same server "
            "(a route that reads nothing). "
            f"Placement: {placement}; other work on the machine is not stopped (load average "
            f"{load_before} before, {load_after} after). "
            "Run: `python -m bench.all bench_lookup_load`.",
            verdict,
            table(runs),
        ]
    )
    write_section("lookup_load", "Public lookup at saturation (one worker)", body)


if __name__ == "__main__":
    main()
