"""1,000 gateways on one feed (issue 18): simulated gateways follow the feed while the regulator
approves 10 applications a second for 60 s through the API; for each approval, the time until
50 %, 99 % and 100 % of the gateways hold it. First with every gateway long-polling
`vpnreg serve` (/feed/v1/delta?wait=, as FeedClient does), then with every gateway polling the
static feed (ADR 0009) behind a real nginx once a second with a conditional GET of
notification.json.
Meanwhile the server answers public lookups (GET /api/v1/ip/{address}, 20 a second); their
latency is reported. Goal: 99 % of gateways within 2 s of each approval through the API server,
lookups p99 under 50 ms.

The registry: a throwaway PostgreSQL cluster, BENCH_FANOUT_BASE registrations loaded with
`vpnreg import` (legacy CSV), then the approvals' applications prepared (submitted, verified,
endorsed) through the registry services before the server starts.

The gateways are asyncio tasks spread over BENCH_FANOUT_SIMS processes (the approvals and the
lookups run in one more), each with its own keep-alive connection
(bench/lean_http.py) and its own verified state: every document goes through the agent's
verification (`verify_compact`, `verify_document`, `verify_notification`, the notification's
SHA-256 of each file, `apply_delta` with its set-hash check), the calls `FeedClient` makes; the
state is held in memory, not written to disk. Two times are kept per gateway and approval:
*delivered* (the answer carrying it was read off the socket) and *held* (verified and applied).
On a machine with few cores the thousand gateways' verification competes with the server for
CPU: *held* then includes the simulation's own queueing, *delivered* much less so.

Environment: BENCH_FANOUT_GATEWAYS (1000), BENCH_FANOUT_RATE (10 approvals/s),
BENCH_FANOUT_SECONDS (60), BENCH_FANOUT_BASE (2000 registrations), BENCH_FANOUT_MODES
(api,static), BENCH_FANOUT_POLL_S (1.0, the static gateways' poll interval),
BENCH_FANOUT_WORKERS (`vpnreg serve --workers`, default one per core), BENCH_FANOUT_NOTIFY_GAP_S
(1.0, the server's VPNREG_FEED_NOTIFY_GAP_S), BENCH_FANOUT_SIMS (processes the simulated gateways
are spread over, default one per core), BENCH_FANOUT_SIM_NICE (10, their niceness),
BENCH_FANOUT_WORK
(a directory to keep the server's logs in; default a temporary one).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import gzip
import json
import math
import multiprocessing
import os
import random
import re
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil  # type: ignore[import-untyped]
from tests.fixtures.nginx import serve_directory

from bench.bench_feed_e2e import _sign_in
from bench.bench_import import legacy_csv
from bench.bench_portal_load import VENV_BIN, _env, postgres_cluster
from bench.lean_http import Answer, Connection, HttpError
from bench.report import write_section
from bench.review_world import ADMIN, TO_REGULATOR, review_world
from bench.serving import Served, vpnreg_serve
from vpnreg.agent.feedclient import load_public_keys
from vpnreg.clock import SystemClock
from vpnreg.core.feed import (
    COMPACT_MEDIA_TYPE,
    FeedState,
    VerifiedDelta,
    apply_delta,
    dump_document,
    verify_compact,
    verify_document,
)
from vpnreg.core.feed.notification import compact_sidecar, verify_notification
from vpnreg.core.feed.sethash import RECORD_DTYPE
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.feed_static import NOTIFICATION_FILE
from vpnreg.settings import Settings

GATEWAYS = int(os.environ.get("BENCH_FANOUT_GATEWAYS", "1000"))
RATE = float(os.environ.get("BENCH_FANOUT_RATE", "10"))
SECONDS = float(os.environ.get("BENCH_FANOUT_SECONDS", "60"))
BASE = int(os.environ.get("BENCH_FANOUT_BASE", "2000"))
MODES = os.environ.get("BENCH_FANOUT_MODES", "api,static").split(",")
POLL_S = float(os.environ.get("BENCH_FANOUT_POLL_S", "1.0"))
#: `vpnreg serve --workers N` (ADR 0016): by default one per core.
WORKERS = int(os.environ.get("BENCH_FANOUT_WORKERS", str(os.cpu_count() or 1)))
#: VPNREG_FEED_NOTIFY_GAP_S of the server: the least time between publishes asked for by
#: changes (0.2 s by default; each publish answers every waiting gateway at once, so with a
#: thousand gateways a publish a second is what docs/deployment.md advises).
NOTIFY_GAP_S = float(os.environ.get("BENCH_FANOUT_NOTIFY_GAP_S", "1.0"))
#: The simulation processes' niceness: they stand for a thousand other machines, so on the
#: shared cores the server, its database and the approvals come first (0: no priority).
SIM_NICE = int(os.environ.get("BENCH_FANOUT_SIM_NICE", "10"))
#: Processes the simulated gateways are spread over (each its own event loop).
SIMS = int(os.environ.get("BENCH_FANOUT_SIMS", str(os.cpu_count() or 1)))
#: Approvals in flight at once at most (each waits for its answer in a thread of its own).
APPROVERS = 64
LOOKUPS_PER_S = 20
LOOKUP_CONNECTIONS = 4
#: How long after the last approval the gateways get to catch up before the run ends.
DRAIN_S = 30.0
WAIT_S = 30
TARGET_S = 2.0
TARGET_LOOKUP_P99_MS = 50.0
VPNREG = VENV_BIN / "vpnreg"


# --- the registry -----------------------------------------------------------------------------


@dataclass
class Registry:
    url: str
    work: Path
    env: dict[str, str]
    token: str
    #: Endorsed applications waiting for the regulator, per mode.
    waiting: dict[str, list[int]]
    seed_s: float


def _prefixes() -> Iterator[str]:
    # Beside the legacy import's 45.0.0.0/8 and 2a00::/16: no approval overlaps a registration.
    for net in range(1 << 20):
        yield f"46.{(net >> 12) & 255}.{(net >> 4) & 255}.{(net & 15) << 4}/28"


def seed(url: str, work: Path) -> Registry:
    started = time.perf_counter()
    env = _env(url, work)
    keys = work / "keys"
    subprocess.run([str(VPNREG), "feed", "keygen", "--dir", str(keys)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    env["VPNREG_FEED_KEY"] = str(keys / "feed.key")
    subprocess.run([str(VPNREG), "db", "upgrade"], env=env, cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    if BASE:
        (work / "legacy.csv").write_text(legacy_csv(BASE))
        subprocess.run([str(VPNREG), "import", "legacy.csv"], env=env, cwd=work, check=True,
                       capture_output=True)  # fmt: skip
    settings = Settings(
        database_url=url, data_dir=work, feed_key=keys / "feed.key",
        secret_key=env["VPNREG_SECRET_KEY"], allow_documentation_prefixes=True,
    )  # fmt: skip
    config = services.ServiceConfig.from_settings(settings)
    clock = SystemClock()
    engine = make_engine(url)
    waiting: dict[str, list[int]] = {}
    with make_session_factory(engine)() as session:
        now = clock.now()
        world = review_world(session, label="Fanout", now=now, config=config)
        users = world.users
        _, token = services.create_token(
            session, name="fanout-gateways", role="gateway", actor=ADMIN, now=now
        )
        prefixes = _prefixes()
        for mode in MODES:
            ids = []
            for _ in range(math.ceil(RATE * SECONDS)):
                app = services.create_application(
                    session, organisation_id=world.organisation_id, isp_id=world.isp_id,
                    prefixes=[(next(prefixes), [])], actor=users["applicant"],
                    now=clock.now(), config=config,
                )  # fmt: skip
                world.take_steps(session, app.id, TO_REGULATOR, clock=clock, config=config)
                ids.append(app.id)
            waiting[mode] = ids
    engine.dispose()
    return Registry(url, work, env, token, waiting, time.perf_counter() - started)


# --- simulated gateways -----------------------------------------------------------------------


@dataclass
class Gateway:
    """One simulated gateway: its connection, verified state and what it saw."""

    number: int
    conn: Connection
    state: FeedState | None = None
    wire_bytes: int = 0
    requests: int = 0
    snapshots: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Run:
    mode: str
    gateways: list[Gateway]
    trusted: dict[str, Any]
    #: the registrations the approvals will bring
    watched: set[int] = field(default_factory=set)
    #: registration id -> [(delivered, held)] per gateway that got it
    arrivals: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _take(gateway: Gateway, answer: Answer) -> Answer:
    gateway.wire_bytes += answer.wire_bytes
    gateway.requests += 1
    return answer


def _record(run: Run, docs: list[VerifiedDelta], delivered: float) -> None:
    held = time.perf_counter()
    for doc in docs:
        ids = doc.added.records.view(RECORD_DTYPE)["registration_id"].tolist()
        for rid in ids:
            if rid in run.watched:
                run.arrivals.setdefault(rid, []).append((delivered, held))


def _apply(run: Run, gateway: Gateway, raws: list[bytes], delivered: float) -> None:
    """Verify every delta, then apply them all (as FeedClient._accept_deltas does)."""
    assert gateway.state is not None
    now = _now()
    docs = []
    for raw in raws:
        doc = verify_document(raw, trusted=run.trusted, now=now)
        if not isinstance(doc, VerifiedDelta):
            raise ValueError("the delta list holds a snapshot")
        docs.append(doc)
    state = gateway.state
    for doc in docs:
        state = apply_delta(state, doc)
    gateway.state = state
    _record(run, docs, delivered)


async def _api_snapshot(run: Run, gateway: Gateway) -> None:
    accept = {"Accept": f"{COMPACT_MEDIA_TYPE}, application/json;q=0.5"}
    answer = _take(gateway, await gateway.conn.get("/feed/v1/snapshot", accept))
    if answer.status != 200:
        raise HttpError(f"/snapshot: HTTP {answer.status}")
    doc = verify_compact(answer.body, trusted=run.trusted, now=_now())
    gateway.state = doc.state()
    gateway.snapshots += 1


async def api_gateway(run: Run, gateway: Gateway) -> None:
    """Long poll /delta from the held serial (FeedClient._poll_url)."""
    while not run.stop.is_set():
        try:
            if gateway.state is None:
                await _api_snapshot(run, gateway)
                continue
            held = gateway.state
            query = f"since={held.serial}&session={held.session_id}&wait={WAIT_S}"
            answer = _take(gateway, await gateway.conn.get(f"/feed/v1/delta?{query}"))
            delivered = time.perf_counter()
            if answer.status == 204:
                continue
            if answer.status != 200:
                raise HttpError(f"/delta: HTTP {answer.status} {answer.body[:200]!r}")
            body = json.loads(answer.body)
            if body.get("reset") is True:
                gateway.state = None
                continue
            _apply(run, gateway, [dump_document(d) for d in body["deltas"]], delivered)
        except (HttpError, ValueError) as exc:
            gateway.errors.append(str(exc))
            await asyncio.sleep(0.5)


async def _static_file(gateway: Gateway, uri: str) -> bytes:
    answer = _take(gateway, await gateway.conn.get(f"/feed/{uri}"))
    if answer.status != 200:
        raise HttpError(f"/feed/{uri}: HTTP {answer.status}")
    return answer.raw


async def static_gateway(run: Run, gateway: Gateway, offset: float) -> None:
    """Poll notification.json with If-None-Match every POLL_S, follow its deltas (checking
    each file's SHA-256) or take the compact snapshot twin (FeedClient._poll_static)."""
    etag = ""
    await asyncio.sleep(offset)
    next_poll = time.perf_counter()
    while not run.stop.is_set():
        next_poll += POLL_S
        try:
            headers = {"If-None-Match": etag} if etag and gateway.state is not None else {}
            answer = _take(gateway, await gateway.conn.get(f"/feed/{NOTIFICATION_FILE}", headers))
            if answer.status == 200:
                delivered = time.perf_counter()
                held = gateway.state.held() if gateway.state is not None else None
                note = verify_notification(answer.raw, trusted=run.trusted, now=_now(), held=held)
                refs = None
                if gateway.state is not None and gateway.state.session_id == note.session_id:
                    refs = note.deltas_from(gateway.state.serial)
                if refs is None:
                    sidecar = compact_sidecar(note.snapshot.uri)
                    assert sidecar is not None
                    data = gzip.decompress(await _static_file(gateway, sidecar))
                    snap = verify_compact(data, trusted=run.trusted, now=_now())
                    if (snap.session_id, snap.serial) != (note.session_id, note.serial):
                        raise ValueError("the compact twin is not the snapshot named")
                    gateway.state = snap.state()
                    gateway.snapshots += 1
                elif refs:
                    raws = []
                    for ref in refs:
                        data = await _static_file(gateway, ref.uri)
                        if not ref.matches(data):
                            raise ValueError(f"{ref.uri}: SHA-256 differs from the notification")
                        raws.append(gzip.decompress(data))
                    delivered = time.perf_counter()
                    _apply(run, gateway, raws, delivered)
                etag = answer.headers.get("etag", "")
        except (HttpError, ValueError) as exc:
            gateway.errors.append(str(exc))
        await asyncio.sleep(max(0.0, next_poll - time.perf_counter()))


# --- the regulator and the public -------------------------------------------------------------


@dataclass
class Outside:
    """What the regulator and the public saw (from their own process)."""

    #: registration id -> approval sent (perf_counter: CLOCK_MONOTONIC, the same in every
    #: process)
    sent: dict[int, float] = field(default_factory=dict)
    approve_ms: list[float] = field(default_factory=list)
    approve_errors: list[str] = field(default_factory=list)
    #: (first sent, last answered) of the approvals
    approve_span: tuple[float, float] = (0.0, 0.0)
    lookup_ms: list[float] = field(default_factory=list)
    lookup_errors: int = 0


def regulator_and_public(base: str, ids: list[int]) -> Outside:
    """In a process of its own, so that neither waits on the simulated gateways' busy loop:
    approve `ids` at RATE a second through the API as a signed-in regulator (each in a thread of
    its own, so a slow answer does not hold back the next one) while the public asks lookups."""
    seen = Outside()
    stop = threading.Event()
    port = int(base.rsplit(":", 1)[1])
    looking = [
        threading.Thread(target=_lookups, args=(seen, port, stop, n), daemon=True)
        for n in range(LOOKUP_CONNECTIONS)
    ]
    for thread in looking:
        thread.start()
    limits = httpx.Limits(max_connections=APPROVERS, max_keepalive_connections=APPROVERS)
    with httpx.Client(base_url=base, timeout=30, limits=limits) as http:
        _sign_in(http, "regulator")

        def one(app_id: int) -> None:
            shown = http.get(f"/api/v1/applications/{app_id}")
            if shown.status_code != 200:
                seen.approve_errors.append(f"{app_id}: GET {shown.status_code} {shown.text[:200]}")
                return
            etag = shown.headers["ETag"]
            seen.sent[app_id] = sent = time.perf_counter()
            answer = http.post(f"/api/v1/applications/{app_id}/approve", headers={"If-Match": etag})
            seen.approve_ms.append((time.perf_counter() - sent) * 1000)
            if answer.status_code != 200:
                seen.approve_errors.append(f"{app_id}: {answer.status_code} {answer.text[:200]}")

        with ThreadPoolExecutor(APPROVERS, thread_name_prefix="approver") as pool:
            start = time.perf_counter()
            for i, app_id in enumerate(ids):
                time.sleep(max(0.0, start + i / RATE - time.perf_counter()))
                pool.submit(one, app_id)
        seen.approve_span = (start, time.perf_counter())
    stop.set()
    for thread in looking:
        thread.join()
    return seen


def _lookups(seen: Outside, port: int, stop: threading.Event, number: int) -> None:
    """One keep-alive connection asking LOOKUPS_PER_S / LOOKUP_CONNECTIONS lookups a second."""
    rng = random.Random(7 + number)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        next_at = time.perf_counter()
        while not stop.is_set():
            next_at += LOOKUP_CONNECTIONS / LOOKUPS_PER_S
            octets = (
                rng.choice((45, 46)),
                rng.randrange(4),
                rng.randrange(256),
                rng.randrange(255),
            )
            start = time.perf_counter()
            try:
                answer = http.get(f"/api/v1/ip/{'.'.join(map(str, octets))}")
                if answer.status_code in (200, 404):
                    seen.lookup_ms.append((time.perf_counter() - start) * 1000)
                else:
                    seen.lookup_errors += 1
            except httpx.HTTPError:
                seen.lookup_errors += 1
            stop.wait(max(0.0, next_at - time.perf_counter()))


# --- one run ----------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """The process and its children (the serve process and its workers)."""
    process = psutil.Process(pid)
    return [pid, *(c.pid for c in process.children(recursive=True))]


def _tree_cpu_s(pids: list[int]) -> float:
    return sum(_cpu_s(p) for p in pids)


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Figures:
    mode: str
    approvals: int
    #: per approval: seconds until 50 %, 99 %, 100 % held (inf: some never did)
    held: list[tuple[float, float, float]]
    delivered: list[tuple[float, float, float]]
    #: per approval: seconds until the first gateway held it
    first_held: list[float]
    lookup_ms: list[float]
    lookup_errors: int
    approve_errors: int
    gateway_errors: int
    error_kinds: dict[str, int]
    snapshots: int
    requests: int
    wire_bytes: int
    server_cpu_s: float
    server_hwm_mib: float
    nginx_cpu_s: float | None
    client_cpu_s: float
    window_s: float
    connect_s: float
    approve_ms: list[float]
    approve_s: float


def _quantiles(times: list[float], n: int) -> tuple[float, float, float]:
    if len(times) < n:
        times = times + [math.inf] * (n - len(times))
    ordered = sorted(times)
    return (
        ordered[math.ceil(0.5 * n) - 1],
        ordered[math.ceil(0.99 * n) - 1],
        ordered[-1],
    )


@dataclass
class Share:
    """What one simulation process's gateways saw over the measured window."""

    arrivals: dict[int, list[tuple[float, float]]]
    errors: int
    #: error message (digits blanked) -> how many
    error_kinds: dict[str, int]
    snapshots: int
    requests: int
    wire_bytes: int
    cpu_s: float
    connect_s: float


@dataclass(frozen=True)
class Signals:
    """Between the parent and the simulation processes (multiprocessing events)."""

    ready: Any  # this process's gateways all hold a first state
    measuring: Any  # the measured window starts: counters from zero
    done: Any  # this process's gateways all hold every approval
    stop: Any


def simulate(mode: str, host: str, port: int, auth: dict[str, str], numbers: range, total: int,
             ids: list[int], keys: str, signals: Signals, out: Any) -> None:  # fmt: skip
    """One simulation process: the gateways `numbers` (of `total`), until `signals.stop`; its
    Share goes to `out`. Several such processes use every core for the simulation, so that no
    single event loop is what the gateways wait on."""
    os.nice(SIM_NICE)
    trusted = load_public_keys([Path(keys)])
    gateways = [Gateway(i, Connection(host, port, auth)) for i in numbers]
    run = Run(mode, gateways, trusted, watched=set(ids))
    out.put(asyncio.run(_simulate(run, total, signals)))


async def _simulate(run: Run, total: int, signals: Signals) -> Share:
    connect_start = time.perf_counter()
    if run.mode == "api":
        tasks = [asyncio.create_task(api_gateway(run, g)) for g in run.gateways]
    else:
        tasks = [
            asyncio.create_task(static_gateway(run, g, POLL_S * g.number / total))
            for g in run.gateways
        ]
    deadline = time.perf_counter() + 300
    while any(g.state is None for g in run.gateways):
        if time.perf_counter() > deadline:
            raise RuntimeError("gateways did not all take a first state within 300 s")
        await asyncio.sleep(0.2)
    connect_s = time.perf_counter() - connect_start
    signals.ready.set()
    while not signals.measuring.is_set():
        await asyncio.sleep(0.05)
    for g in run.gateways:
        g.wire_bytes = g.requests = 0
    rusage0 = resource.getrusage(resource.RUSAGE_SELF)
    want = len(run.gateways)
    while not signals.stop.is_set():
        if not signals.done.is_set() and all(
            len(run.arrivals.get(i, ())) >= want for i in run.watched
        ):
            signals.done.set()
        await asyncio.sleep(0.2)
    rusage1 = resource.getrusage(resource.RUSAGE_SELF)
    run.stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for g in run.gateways:
        await g.conn.close()
    return Share(
        arrivals=run.arrivals,
        errors=sum(len(g.errors) for g in run.gateways),
        error_kinds=dict(
            collections.Counter(
                re.sub(r"\d+", "N", e)[:120] for g in run.gateways for e in g.errors
            )
        ),
        snapshots=sum(g.snapshots for g in run.gateways),
        requests=sum(g.requests for g in run.gateways),
        wire_bytes=sum(g.wire_bytes for g in run.gateways),
        cpu_s=(rusage1.ru_utime + rusage1.ru_stime) - (rusage0.ru_utime + rusage0.ru_stime),
        connect_s=connect_s,
    )


def _measure(mode: str, served: Served, host: str, port: int, auth: dict[str, str],
             ids: list[int], keys: Path, nginx_pid: int | None) -> Figures:  # fmt: skip
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    signals = [
        Signals(spawn.Event(), spawn.Event(), spawn.Event(), spawn.Event()) for _ in range(SIMS)
    ]
    parts = [range(k, GATEWAYS, SIMS) for k in range(SIMS)]
    sims = [
        spawn.Process(
            target=simulate, args=(mode, host, port, auth, part, GATEWAYS, ids, str(keys), sig, out)
        )
        for part, sig in zip(parts, signals, strict=True)
    ]
    for sim in sims:
        sim.start()
    try:
        deadline = time.monotonic() + 360
        for sig in signals:
            while not sig.ready.wait(1):
                if time.monotonic() > deadline or not all(p.is_alive() for p in sims):
                    raise RuntimeError("the simulated gateways did not all start")
        time.sleep(2)
        # the workers are all up (each answered a gateway); their CPU from here
        server_pids = _tree(served.process.pid)
        cpu0, nginx0 = _tree_cpu_s(server_pids), _cpu_s(nginx_pid) if nginx_pid else 0.0
        for sig in signals:
            sig.measuring.set()
        window_start = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=spawn) as outside_process:
            outside = outside_process.submit(regulator_and_public, served.base, ids).result()
        drain_until = time.perf_counter() + DRAIN_S
        while time.perf_counter() < drain_until and not all(s.done.is_set() for s in signals):
            time.sleep(0.2)
        window_s = time.perf_counter() - window_start
        server_cpu = _tree_cpu_s(server_pids) - cpu0
        nginx_cpu = _cpu_s(nginx_pid) - nginx0 if nginx_pid else None
        server_hwm = sum(_hwm_mib(p) for p in server_pids)
        for sig in signals:
            sig.stop.set()
        shares: list[Share] = [out.get(timeout=120) for _ in sims]
    finally:
        for sim in sims:
            sim.join(timeout=30)
            if sim.is_alive():
                sim.kill()
    arrivals: dict[int, list[tuple[float, float]]] = {}
    for share in shares:
        for rid, got in share.arrivals.items():
            arrivals.setdefault(rid, []).extend(got)
    held, delivered, first_held = [], [], []
    for i in ids:
        got = arrivals.get(i, [])
        sent = outside.sent[i]
        delivered.append(_quantiles([d - sent for d, _ in got], GATEWAYS))
        held.append(_quantiles([h - sent for _, h in got], GATEWAYS))
        first_held.append(min((h - sent for _, h in got), default=math.inf))
    return Figures(
        mode=mode, approvals=len(ids), held=held, delivered=delivered, first_held=first_held,
        lookup_ms=outside.lookup_ms, lookup_errors=outside.lookup_errors,
        approve_errors=len(outside.approve_errors),
        gateway_errors=sum(s.errors for s in shares),
        error_kinds=_merged_counts([s.error_kinds for s in shares]),
        snapshots=sum(s.snapshots for s in shares),
        requests=sum(s.requests for s in shares),
        wire_bytes=sum(s.wire_bytes for s in shares),
        server_cpu_s=server_cpu, server_hwm_mib=server_hwm,
        nginx_cpu_s=nginx_cpu,
        client_cpu_s=sum(s.cpu_s for s in shares),
        window_s=window_s, connect_s=max(s.connect_s for s in shares),
        approve_ms=outside.approve_ms,
        approve_s=outside.approve_span[1] - outside.approve_span[0],
    )  # fmt: skip


def _merged_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for part in parts:
        total.update(part)
    return dict(total)


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def measure(registry: Registry, mode: str) -> Figures:
    # The server's connection limit (default 1,000, 503 beyond) must admit every gateway's
    # long poll besides the regulator and the lookups.
    env = dict(registry.env) | {
        "VPNREG_HTTP_MAX_CONNECTIONS": str(2 * GATEWAYS + 100),
        "VPNREG_FEED_NOTIFY_GAP_S": str(NOTIFY_GAP_S),
    }
    with contextlib.ExitStack() as stack:
        nginx_pid = None
        if mode == "static":
            root = registry.work / "www"
            (root / "feed").mkdir(parents=True, exist_ok=True)
            env["VPNREG_FEED_STATIC_DIR"] = str(root / "feed")
            web = stack.enter_context(
                serve_directory(root, registry.work / "nginx", connections=GATEWAYS + 64)
            )
            nginx_pid = int((web.run_dir / "nginx.pid").read_text())
            host, port = "127.0.0.1", web.port
        served = stack.enter_context(
            vpnreg_serve(
                VPNREG,
                env,
                registry.work / f"serve-{mode}.log",
                cwd=registry.work,
                # as deploy/vpnreg-serve.service: nginx in front keeps the access log
                args=("--workers", str(WORKERS), "--no-access-log"),
            )
        )
        if mode == "api":
            host, port = "127.0.0.1", _port(served.base)
            auth = {"Authorization": f"Bearer {registry.token}", "Accept-Encoding": "gzip"}
        else:
            auth = {}
            # the first publish writes the files
            deadline = time.monotonic() + 60
            while not (registry.work / "www" / "feed" / NOTIFICATION_FILE).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the server wrote no static feed within 60 s")
                time.sleep(0.2)
        keys = registry.work / "keys" / "feed.pub"
        return _measure(mode, served, host, port, auth, registry.waiting[mode], keys, nginx_pid)


# --- report -----------------------------------------------------------------------------------


def _s(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.2f} s"


def _row(label: str, per_approval: list[tuple[float, float, float]], k: int) -> str:
    values = [q[k] for q in per_approval]
    finite = [v for v in values if not math.isinf(v)]
    median = statistics.median(values) if values else math.nan
    worst = max(values) if values else math.nan
    return f"| {label} | {_s(median)} | {_s(worst)} | {len(values) - len(finite)} |"


def section(figures: list[Figures], registry: Registry) -> str:
    lines = [
        f"{GATEWAYS:,} simulated gateways on one feed while the regulator approves "
        f"{RATE:g} applications a second for {SECONDS:g} s through the API "
        f"(PostgreSQL, {BASE:,} registrations loaded before, `vpnreg serve --workers "
        f"{WORKERS} --no-access-log` (as deployed) on {os.cpu_count()} cores shared with "
        "the simulation and PostgreSQL, "
        f"`VPNREG_FEED_NOTIFY_GAP_S={NOTIFY_GAP_S:g}`; the gateways spread over {SIMS} "
        f"simulation processes at nice {SIM_NICE} (they stand for other machines: the server, "
        "PostgreSQL and the approvals come first on the shared cores; the held times still "
        "include the simulation's verification), the approvals and lookups in one more; "
        f"static gateways poll every {POLL_S:g} s; `VPNREG_HTTP_MAX_CONNECTIONS` raised from "
        f"its 1,000 to {2 * GATEWAYS + 100:,} so that every long poll is admitted). Per "
        "approval, the time from sending the approval until that share of the gateways "
        "holds it verified (*held*) or has read the answer carrying it (*delivered*); the "
        f"table gives the median and the worst over all approvals. Seeding took "
        f"{registry.seed_s:.0f} s.",
        "",
    ]
    for f in figures:
        met = [q[1] <= TARGET_S for q in f.held]
        lookup_p99 = float(np.percentile(f.lookup_ms, 99)) if f.lookup_ms else math.nan
        lines += [
            f"**{'API server, long poll' if f.mode == 'api' else 'static feed behind nginx'}** "
            f"({f.approvals} approvals; first states taken in {f.connect_s:.1f} s, "
            f"{f.snapshots:,} snapshots in all)",
            "",
            "| share of gateways | median over approvals | worst | approvals never reaching it |",
            "| --- | ---: | ---: | ---: |",
            _row("50 % held", f.held, 0),
            _row("99 % held", f.held, 1),
            _row("100 % held", f.held, 2),
            _row("99 % delivered", f.delivered, 1),
            _row("100 % delivered", f.delivered, 2),
            f"| first gateway held | {_s(statistics.median(f.first_held))} | "
            f"{_s(max(f.first_held))} | {sum(math.isinf(v) for v in f.first_held)} |",
            "",
            f"- 99 % of gateways within {TARGET_S:g} s: {sum(met)} of {len(met)} approvals "
            f"(**{'met' if all(met) else 'not met'}**).",
            f"- Lookups meanwhile: {len(f.lookup_ms):,} answered, p50 "
            f"{float(np.percentile(f.lookup_ms, 50)) if f.lookup_ms else math.nan:.1f} ms, "
            f"p99 {lookup_p99:.1f} ms (target {TARGET_LOOKUP_P99_MS:g} ms: "
            f"**{'met' if lookup_p99 < TARGET_LOOKUP_P99_MS else 'not met'}**), "
            f"{f.lookup_errors} failed.",
            f"- Over the {f.window_s:.0f} s window: server CPU {f.server_cpu_s:.1f} s "
            f"({f.server_cpu_s / f.window_s:.0%} of a core), peak RSS {f.server_hwm_mib:.0f} MiB "
            "(all processes)"
            + (f"; nginx CPU {f.nginx_cpu_s:.1f} s" if f.nginx_cpu_s is not None else "")
            + f"; the simulated gateways' CPU {f.client_cpu_s:.1f} s; "
            f"{f.requests:,} gateway requests, {f.wire_bytes / 2**20:.1f} MiB sent to gateways "
            f"({f.wire_bytes / max(f.requests, 1):.0f} B a request).",
            f"- Approvals: {f.approvals} sent in {f.approve_s:.1f} s "
            f"({f.approvals / max(f.approve_s, 1e-9):.1f} a second); each POST answered in p50 "
            f"{float(np.percentile(f.approve_ms, 50)) if f.approve_ms else math.nan:.0f} ms, "
            f"p99 {float(np.percentile(f.approve_ms, 99)) if f.approve_ms else math.nan:.0f} ms "
            "(the held times above include it).",
            f"- Errors: {f.approve_errors} approvals, {f.gateway_errors} gateway requests"
            + "".join(
                f"; {count:,} × `{kind}`"
                for kind, count in collections.Counter(f.error_kinds).most_common(3)
            )
            + ".",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    keep = os.environ.get("BENCH_FANOUT_WORK")  # a directory to keep (logs), else temporary
    with (
        contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory() as tmp,
        postgres_cluster() as url,
    ):
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        registry = seed(url, work)
        print(f"seeded in {registry.seed_s:.0f} s", flush=True)
        figures = []
        for mode in MODES:
            figures.append(measure(registry, mode))
            print(f"{mode}: done", flush=True)
    body = section(figures, registry)
    print(body)
    write_section("gateway-fanout", "1,000 gateways: approval to every gateway", body)


if __name__ == "__main__":
    main()
