"""Writes under contention: applicants creating and submitting applications through the JSON API
with 1, 5 and 20 concurrent clients while 10 anonymous clients look addresses up, against the
real `vpnreg serve` (the console script, its defaults) on SQLite and on PostgreSQL.

Each writer is one applicant (its own organisation) with its own user-bound API token and its
own share of the documentation /32s; it loops POST /api/v1/applications, then POST
.../{id}/submit with If-Match set to the ETag, without think time. The lookup clients loop
GET /api/v1/ip/{address} over the documentation /24s (half of their /28s are registered,
through `vpnreg import`, so lookups hit and miss). All clients are
httpx on one asyncio loop in this process, on 127.0.0.1 only. Figures are taken over a window
after a short warm-up; every request completed inside it counts. Issue 14's target: lookups p99
under 250 ms while the writers run.

Environment: BENCH_WRITES_SECONDS (default 15) for the window of each configuration.
On a machine with two cores or more the clients run on the first core and the server on the
second (sched_setaffinity / taskset); PostgreSQL is not pinned.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from bench import serving
from bench.bench_portal_load import postgres_cluster
from bench.report import write_section
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.models import ISP, Organisation

VENV_BIN = Path(sys.executable).parent
WRITERS = (1, 5, 20)
LOOKUP_CLIENTS = 10
SECONDS = float(os.environ.get("BENCH_WRITES_SECONDS", "15"))
WARMUP_SECONDS = 2.0
TARGET_LOOKUP_P99_MS = 250.0
SECRET = "bench-writes-secret-" + "k" * 28
PASSWORD = "bench-writes-password"  # noqa: S105 (the writers sign in with tokens only)
ADMIN = "cli:admin"
BENCH_ISP = "Bench Fibre"
#: The blocks the writers' /32s come from, in this order, and the lookups' addresses.
WRITE_BLOCKS = ("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24")
LOOKUP_BLOCKS = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
#: A lookup answers with the registration (200) or "not registered" (404).
LOOKUP_OK = frozenset({200, 404})
PIN = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
CLIENT_CPU, SERVER_CPU = 0, 1
#: Log lines of a healthy server: uvicorn's start-up and shutdown, and its access log.
QUIET_LOG = (
    "INFO:     Started server process",
    "INFO:     Waiting for application",
    "INFO:     Application startup",
    "INFO:     Uvicorn running on",
    "INFO:     Shutting down",
    "INFO:     Finished server process",
    "INFO:     Application shutdown",
    "vpnreg: serving on",
)


# --- pure helpers ------------------------------------------------------------------------------


def prefix_pool(blocks: Sequence[str] = WRITE_BLOCKS) -> list[str]:
    """Every address of `blocks` as a /32, block by block."""
    return [f"{address}/32" for block in blocks for address in ipaddress.ip_network(block)]


def share(pool: Sequence[str], clients: int, index: int) -> list[str]:
    """Client `index`'s prefixes out of `clients`: disjoint from every other client's."""
    if not 0 <= index < clients or clients > len(pool):
        raise ValueError(f"client {index} of {clients} cannot share {len(pool)} prefixes")
    return list(pool[index::clients])


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Sample:
    """One request: what it was, when it started and ended (monotonic s), its status (0: no
    answer) and, for a failure, what came back."""

    kind: str
    start: float
    end: float
    status: int
    detail: str = ""

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000

    @property
    def ok(self) -> bool:
        if self.kind == "lookup":
            return self.status in LOOKUP_OK
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Result:
    backend: str
    writers: int
    seconds: float
    applications: int
    write_requests: int
    write_errors: int
    write_p50: float
    write_p99: float
    write_max: float
    lookups: int
    lookup_errors: int
    lookup_p50: float
    lookup_p99: float
    lookup_max: float
    client_cpu: float
    server_cpu: float
    failures: tuple[str, ...]

    @property
    def applications_per_s(self) -> float:
        return self.applications / self.seconds

    @property
    def lookups_per_s(self) -> float:
        return self.lookups / self.seconds


def summarise(
    backend: str,
    writers: int,
    samples: Sequence[Sample],
    window: tuple[float, float],
    cpu: tuple[float, float],
) -> Result:
    """The figures of one run from the requests that ended inside `window`. An application
    counts when its submit answered 200 inside the window. `cpu`: the clients' and the
    server's CPU share over the window."""
    start, end = window
    inside = [s for s in samples if start <= s.end < end]
    writes = [s for s in inside if s.kind in ("create", "submit")]
    lookups = [s for s in inside if s.kind == "lookup"]
    write_ok = [s for s in writes if s.ok]
    failed = [s for s in inside if not s.ok]
    write_ms = [s.ms for s in writes]
    lookup_ms = [s.ms for s in lookups]
    return Result(
        backend=backend,
        writers=writers,
        seconds=end - start,
        applications=sum(1 for s in write_ok if s.kind == "submit"),
        write_requests=len(writes),
        write_errors=len(writes) - len(write_ok),
        write_p50=percentile(write_ms, 50),
        write_p99=percentile(write_ms, 99),
        write_max=max(write_ms, default=math.nan),
        lookups=len(lookups),
        lookup_errors=sum(1 for s in lookups if not s.ok),
        lookup_p50=percentile(lookup_ms, 50),
        lookup_p99=percentile(lookup_ms, 99),
        lookup_max=max(lookup_ms, default=math.nan),
        client_cpu=cpu[0],
        server_cpu=cpu[1],
        failures=tuple(f"{s.kind} {s.status}: {s.detail[:200]}" for s in failed[:5]),
    )


# --- the registry and the server ---------------------------------------------------------------


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VPNREG_DATABASE_URL": url,
        "VPNREG_DATA_DIR": str(data_dir),
        "VPNREG_SECRET_KEY": SECRET,
        "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
        "VPNREG_FEED_KEY": str(data_dir / "feed.key"),
    }


def _vpnreg(env: dict[str, str], *args: str, cwd: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "vpnreg"), *args],
        env=env,
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"vpnreg {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")


@dataclass(frozen=True)
class Registry:
    isp_id: int
    tokens: list[str]


def legacy_csv(valid_until: dt.date) -> str:
    """Registrations for every other /28 of the lookup blocks (24 organisations, one ISP), so
    about half the lookups find one."""
    lines = ["organisation,category,isp,subscriber_id,prefix,valid_until"]
    subnets = [
        sub for block in LOOKUP_BLOCKS for sub in ipaddress.ip_network(block).subnets(new_prefix=28)
    ]
    for i, sub in enumerate(subnets[::2]):
        lines.append(
            f"Bench Org {i + 1},software_house,{BENCH_ISP},ACC-{i:04d},{sub},{valid_until}"
        )
    return "\r\n".join(lines) + "\r\n"


def prepare(env: dict[str, str], cwd: Path, writers: int) -> Registry:
    """Migrate, import the registrations (`vpnreg import`), and add applicants 1..`writers`,
    one per imported organisation, each with one user-bound API token."""
    _vpnreg(env, "db", "upgrade", cwd=cwd)
    legacy = cwd / "legacy.csv"
    legacy.write_text(legacy_csv(dt.date.today() + dt.timedelta(days=365)))
    _vpnreg(env, "import", str(legacy), cwd=cwd)
    engine = make_engine(env["VPNREG_DATABASE_URL"])
    try:
        with make_session_factory(engine)() as session:
            now = dt.datetime.now(dt.UTC)
            isp_id = session.scalar(select(ISP.id).where(ISP.name == BENCH_ISP))
            if isp_id is None:
                raise RuntimeError("the import made no ISP")
            tokens = []
            for n in range(1, writers + 1):
                org_id = session.scalar(
                    select(Organisation.id).where(Organisation.name == f"Bench Org {n}")
                )
                if org_id is None:
                    raise RuntimeError(f"the import made no Bench Org {n}")
                user = services.create_user(
                    session,
                    username=f"writer{n}",
                    password=PASSWORD,
                    role=Role.APPLICANT,
                    actor=ADMIN,
                    now=now,
                    organisation_id=org_id,
                )
                _, secret = services.create_token(
                    session, name=f"writer{n}-api", user_id=user.id, actor=ADMIN, now=now
                )
                tokens.append(secret)
            return Registry(isp_id=isp_id, tokens=tokens)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Server:
    base: str
    pid: int

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def vpnreg_serve(env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """`vpnreg serve` as a user starts it (defaults, access log included) on a free port of
    127.0.0.1, pinned to the server's core when there are two."""
    pin = ["taskset", "-c", str(SERVER_CPU)] if PIN else []
    args = ["--host", "127.0.0.1"]
    with serving.vpnreg_serve(VENV_BIN / "vpnreg", env, log_path, prefix=pin, args=args) as s:
        yield Server(s.base, s.process.pid)


def unusual_log_lines(text: str) -> Counter[str]:
    """The server log's lines other than start-up, shutdown and 2xx/404 access lines, counted;
    a traceback counts by its unindented lines (its header and the exception)."""
    found: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.strip() or line.startswith((" ", "\t", *QUIET_LOG)):
            continue
        if line.startswith("INFO:") and ('" 2' in line or '" 404 ' in line):
            continue
        found[line] += 1
    return found


def log_summary(lines: Counter[str], most: int = 4) -> str:
    """`lines` for the report: none, or the most frequent ones with their counts."""
    if not lines:
        return "none"
    shown = ", ".join(f"{count} x `{line[:160]}`" for line, count in lines.most_common(most))
    rest = len(lines) - most
    return shown + (f" and {rest} other line{'s' if rest != 1 else ''}" if rest > 0 else "")


@contextlib.contextmanager
def client_core() -> Iterator[None]:
    """Run this process (the clients) on the client's core while inside, when pinning."""
    if not PIN:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# --- one run -----------------------------------------------------------------------------------


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=httpx.Limits(max_connections=1))


async def _timed(
    samples: list[Sample], kind: str, call: Awaitable[httpx.Response]
) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = await call
    except httpx.HTTPError as exc:
        samples.append(Sample(kind, started, time.monotonic(), 0, repr(exc)))
        return None
    sample = Sample(kind, started, time.monotonic(), response.status_code)
    if not sample.ok:
        sample = Sample(kind, sample.start, sample.end, sample.status, response.text[:300])
    samples.append(sample)
    return response


async def _writer(
    base: str,
    token: str,
    isp_id: int,
    prefixes: list[str],
    samples: list[Sample],
    stop: asyncio.Event,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with _client() as client:
        i = 0
        while not stop.is_set():
            prefix = prefixes[i % len(prefixes)]
            i += 1
            body = {"isp_id": isp_id, "prefixes": [{"prefix": prefix, "peers": []}]}
            created = await _timed(
                samples,
                "create",
                client.post(f"{base}/api/v1/applications", json=body, headers=headers),
            )
            if created is None or created.status_code != 201:
                await asyncio.sleep(0.1)  # no hot loop of failures
                continue
            app_id = created.json()["id"]
            await _timed(
                samples,
                "submit",
                client.post(
                    f"{base}/api/v1/applications/{app_id}/submit",
                    headers={**headers, "If-Match": created.headers["ETag"]},
                ),
            )


async def _looker(base: str, seed: int, samples: list[Sample], stop: asyncio.Event) -> None:
    rng = random.Random(seed)
    blocks = [ipaddress.ip_network(b) for b in LOOKUP_BLOCKS]
    async with _client() as client:
        while not stop.is_set():
            block = rng.choice(blocks)
            address = block[rng.randrange(block.num_addresses)]
            await _timed(samples, "lookup", client.get(f"{base}/api/v1/ip/{address}"))


async def _run(
    server: Server, registry: Registry, writers: int
) -> tuple[list[Sample], float, tuple[float, float]]:
    """Writers and lookups for the warm-up plus the window; returns the samples, the window's
    start and the CPU shares of the clients and the server over the window."""
    base = server.base
    samples: list[Sample] = []
    stop = asyncio.Event()
    pool = prefix_pool()
    tasks = [
        asyncio.create_task(
            _writer(
                base, registry.tokens[n], registry.isp_id, share(pool, writers, n), samples, stop
            )
        )
        for n in range(writers)
    ]
    tasks += [
        asyncio.create_task(_looker(base, seed, samples, stop)) for seed in range(LOOKUP_CLIENTS)
    ]
    await asyncio.sleep(WARMUP_SECONDS)
    window_start, cpu_start = time.monotonic(), time.process_time()
    server_start = server.cpu_seconds()
    await asyncio.sleep(SECONDS)
    took = time.monotonic() - window_start
    cpu = (
        (time.process_time() - cpu_start) / took,
        (server.cpu_seconds() - server_start) / took,
    )
    stop.set()
    await asyncio.gather(*tasks)
    return samples, window_start, cpu


def measure(backend: str, url: str, workdir: Path) -> tuple[list[Result], Counter[str]]:
    """Every configuration on `backend`, one server; returns the results and the server log's
    unusual lines."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _env(url, data_dir)
    started = time.perf_counter()
    registry = prepare(env, workdir, max(WRITERS))
    print(f"\n{backend}: registry prepared in {time.perf_counter() - started:.0f} s", flush=True)
    results = []
    log_path = workdir / "server.log"
    with vpnreg_serve(env, log_path) as server, client_core():
        for writers in (0, *WRITERS):
            samples, window_start, cpu = asyncio.run(_run(server, registry, writers))
            result = summarise(
                backend, writers, samples, (window_start, window_start + SECONDS), cpu
            )
            results.append(result)
            _print(result)
    return results, unusual_log_lines(log_path.read_text(errors="replace"))


def _print(r: Result) -> None:
    print(
        f"  {r.backend:10} writers {r.writers:2d}: {r.applications_per_s:6.1f} applications/s "
        f"(writes p50 {r.write_p50:5.0f} ms p99 {r.write_p99:5.0f} ms max {r.write_max:5.0f} ms, "
        f"{r.write_errors} errors); lookups {r.lookups_per_s:6.1f}/s p50 {r.lookup_p50:4.0f} ms "
        f"p99 {r.lookup_p99:5.0f} ms max {r.lookup_max:5.0f} ms ({r.lookup_errors} errors); "
        f"CPU client {r.client_cpu:.0%} server {r.server_cpu:.0%}",
        flush=True,
    )
    for failure in r.failures:
        print(f"    failed: {failure}", flush=True)


# --- the report --------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def table(results: Sequence[Result]) -> str:
    lines = [
        "| registry | writers | applications/s | write p50 ms | write p99 ms | write errors "
        "| lookups/s | lookup p50 ms | lookup p99 ms | lookup max ms | lookup errors "
        "| client CPU | server CPU |",
        "| --- " + "| ---: " * 12 + "|",
    ]
    for r in results:
        apps = f"{r.applications_per_s:.1f}" if r.writers else "(lookups alone)"
        lines.append(
            f"| {r.backend} | {r.writers} | {apps} | {_ms(r.write_p50)} | {_ms(r.write_p99)} "
            f"| {r.write_errors} | {r.lookups_per_s:.0f} | {_ms(r.lookup_p50)} "
            f"| **{_ms(r.lookup_p99)}** | {_ms(r.lookup_max)} | {r.lookup_errors} "
            f"| {r.client_cpu:.0%} | {r.server_cpu:.0%} |"
        )
    return "\n".join(lines)


def verdict(results: Sequence[Result]) -> str:
    """The target's verdict per configuration with writers, and the failed requests."""
    loaded = [r for r in results if r.writers]
    errors = sum(r.write_errors + r.lookup_errors for r in results)
    missed = [r for r in loaded if not r.lookup_p99 < TARGET_LOOKUP_P99_MS]
    worst = max(loaded, key=lambda r: r.lookup_p99)
    if not missed:
        outcome = f"met in every configuration (worst lookup p99 {worst.lookup_p99:.0f} ms)"
    else:
        outcome = "NOT met with " + ", ".join(
            f"{r.backend} {r.writers} writer{'s' if r.writers != 1 else ''} ({r.lookup_p99:.0f} ms)"
            for r in missed
        )
        if len(missed) < len(loaded):
            outcome += "; met in the other configurations"
    return (
        f"Target (issue 14: lookups p99 < {TARGET_LOOKUP_P99_MS:.0f} ms while writers run, "
        f"every request answered): {outcome}. Failed requests: {errors}."
    )


def _counts(counts: Sequence[int]) -> str:
    return ", ".join(str(c) for c in counts[:-1]) + f" and {counts[-1]}"


def main() -> None:
    started = time.perf_counter()
    results: list[Result] = []
    logs: dict[str, Counter[str]] = {}
    with tempfile.TemporaryDirectory(prefix="vpnreg-bench-writes-") as tmp:
        sqlite_dir = Path(tmp) / "sqlite"
        sqlite_dir.mkdir()
        found, logs["SQLite"] = measure(
            "SQLite", f"sqlite:///{sqlite_dir / 'registry.db'}", sqlite_dir
        )
        results += found
        with postgres_cluster() as pg_url:
            pg_dir = Path(tmp) / "pg"
            pg_dir.mkdir()
            found, logs["PostgreSQL"] = measure("PostgreSQL", pg_url, pg_dir)
            results += found
    took = time.perf_counter() - started
    summary = verdict(results)
    print(f"\n{summary}\nbenchmark took {took:.0f} s")
    for backend, lines in logs.items():
        print(f"{backend} server log: {lines.total()} unusual lines")
        for line, count in lines.most_common(20):
            print(f"  {count:6d} x {line}")
    placement = (
        f"clients pinned to core {CLIENT_CPU} and the server to core {SERVER_CPU} "
        "(sched_setaffinity, taskset); PostgreSQL not pinned"
        if PIN
        else "clients and server share the machine's cores (no taskset or one core)"
    )
    log_note = "; ".join(f"{backend}: {log_summary(lines)}" for backend, lines in logs.items())
    body = "\n\n".join(
        [
            "Applicants creating and submitting applications through the JSON API "
            "(`POST /api/v1/applications`, then `POST /api/v1/applications/{id}/submit` with "
            f"`If-Match: <ETag>`), {_counts(WRITERS)} writers at once, each an applicant of its "
            "own organisation with its own user-bound API token and its own share of the /32s of "
            "198.51.100.0/24, 203.0.113.0/24 and 192.0.2.0/24 (cycled: address space is only "
            f"claimed at approval), no think time; meanwhile {LOOKUP_CLIENTS} anonymous clients "
            "loop `GET /api/v1/ip/{address}` over the same /24s, no think time (24 of their 48 "
            "/28s are registered, imported with `vpnreg import`, so answers are 200 or 404). "
            "Writers 0 is the lookup clients alone, for comparison. The server is the "
            "`vpnreg serve` console script with its defaults (one uvicorn worker, access log on) "
            "on 127.0.0.1, one server per registry, the configurations in the table's order "
            "(applications of earlier ones stay); PostgreSQL is a throwaway cluster with "
            "PostgreSQL's shipped fsync settings. Clients: httpx, one connection each, all on "
            "one asyncio loop in the benchmark's process. Each configuration: "
            f"{WARMUP_SECONDS:.0f} s warm-up, then a {SECONDS:.0f} s window; the requests that "
            "ended inside the window count; an application counts when its submit answered 200 "
            "in the window; write latencies are of both requests. Errors: any write not 2xx, "
            f"any lookup not 200 or 404, or no answer. Placement: {placement}; other work on "
            "the machine is not stopped. Client CPU and server CPU: each process's CPU time over "
            "the window, all its threads (100% = one core). Run: "
            f"`python -m bench.all bench_writes` (this run took {took / 60:.1f} min).",
            summary,
            table(results),
            f"Server log lines other than start-up, shutdown and 2xx/404 access lines: {log_note}.",
            "Before issue 14 (as reported in the issue, under the contention test's mix, not "
            "this benchmark): on SQLite the server stalled for over a minute with one "
            "application created; on PostgreSQL lookups p99 was 315 ms.",
        ]
    )
    write_section("writes", "Writes under contention: API writers and lookups", body)


if __name__ == "__main__":
    main()
