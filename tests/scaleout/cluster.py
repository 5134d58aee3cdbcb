"""Several real `vpnreg serve` processes on one database, and long polls held on connections
whose serving process is known (ADR 0016's tests).

A long poll here is one TCP connection (http.client) to one server: the worker that accepted it
is found from the kernel's connection table (psutil), so a test can show that a change reached
long polls held by every worker, not just by the one that published it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from sqlalchemy import text

from tests.concurrency.server import serve_process
from tests.registry import flow
from tests.registry.conftest import build_world, make_config
from vpnreg.clock import SystemClock
from vpnreg.feedkeys import server_signing_key
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.services.feed_lease import ADVISORY_KEY

#: Subscribers with a subscriber-bound registration in force (ISP Nayatel of the test world);
#: a binding reported for one of them adds its address to the feed: a new serial.
SUBSCRIBERS = ("SUB-1", "SUB-2", "SUB-3", "SUB-4")
#: The functional deadline for a change to reach every long poll (ADR 0016, issue 18).
DEADLINE_S = 10.0
#: Longest a long poll waits on the server (longer than any deadline here).
LONG_POLL_S = 30.0
#: Functional deadline for every worker of a server to start.
STARTUP_S = 60.0


@dataclass(frozen=True)
class Registry:
    """A migrated registry with a published feed, its tokens, and the directory its servers
    share (the feed key sits there)."""

    url: str
    where: Path
    isp_id: int
    isp_token: str
    gateway_token: str

    def server_env(self, check_interval_s: float) -> dict[str, str]:
        return {
            "VPNREG_FEED_KEY": str(self.where / "feed.key"),
            "VPNREG_DATA_DIR": str(self.where / "data"),
            "VPNREG_FEED_CHECK_INTERVAL_S": str(check_interval_s),
        }


def prepare(url: str, where: Path) -> Registry:
    """Migrate `url`, build the test world with SUBSCRIBERS' registrations in force, tokens
    for a gateway and for the ISP's automation, and publish the first serial."""
    upgrade(url)
    engine = make_engine(url)
    config, now = make_config(), SystemClock().now()
    try:
        with make_session_factory(engine)() as session:
            world = build_world(session, now, config)
            for sub in SUBSCRIBERS:
                flow.approved(session, world, config, now, [], subscriber_id=sub)
            _, gateway = services.create_token(
                session, name="gw", role="gateway", actor="cli:admin", now=now
            )
            _, isp = services.create_token(
                session, name="isp-api", user_id=world.isp_user.id, actor="cli:admin", now=now
            )
            services.publish(session, now=now, config=config)
            isp_id = world.isp
    finally:
        engine.dispose()
    server_signing_key(where / "feed.key", production=False)
    return Registry(url, where, isp_id, isp, gateway)


@dataclass
class Server:
    """One running `vpnreg serve`: its base URL and process (the supervisor with --workers)."""

    base: str
    process: psutil.Process

    @property
    def port(self) -> int:
        return urlsplit(self.base).port or 80

    def workers(self) -> list[int]:
        """The processes serving: the workers, or the process itself without --workers."""
        children = [c.pid for c in self.process.children()]
        return children or [self.process.pid]


@contextlib.contextmanager
def server(
    registry: Registry,
    name: str,
    *options: str,
    workers: int = 1,
    check_interval_s: float,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`vpnreg serve --workers N` with `options` on the registry, once every worker has started;
    its log in <where>/<name>/server.log. Idle connections stay open (the long polls' are held
    across the test's steps); `env` adds settings."""
    log_dir = registry.where / name
    log_dir.mkdir()
    with serve_process(
        registry.url, log_dir, "--workers", str(workers), "--keep-alive", "300", *options,
        env=registry.server_env(check_interval_s) | (env or {}),
    ) as (base, process):  # fmt: skip
        log = log_dir / "server.log"
        deadline = time.monotonic() + STARTUP_S
        while log.read_text().count("Application startup complete.") < workers:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Server(base, psutil.Process(process.pid))


class Poll:
    """One gateway connection to one server, kept open for long polls."""

    def __init__(self, target: Server, token: str) -> None:
        self.target = target
        self._token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=LONG_POLL_S + 10)
        self.conn.connect()

    def get(self, path: str) -> tuple[int, dict[str, object] | None]:
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self._token}"})
        answer = self.conn.getresponse()
        body = answer.read()
        return answer.status, (json.loads(body) if body else None)

    def current(self) -> tuple[str, int]:
        """The (session, serial) this connection's server holds (retrying while a server that
        has just started answers 503)."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            status, body = self.get("/feed/v1/notify?since=0&wait=0")
            if status == 200 and body is not None:
                return str(body["session_id"]), int(str(body["serial"]))
            assert status == 503 and time.monotonic() < deadline, (status, body)
            time.sleep(0.1)

    def wait_past(self, state: tuple[str, int]) -> tuple[int, dict[str, object] | None, float]:
        """Long poll from `state`: (status, body, time.monotonic() of the answer)."""
        session, serial = state
        status, body = self.get(
            f"/feed/v1/notify?since={serial}&session={session}&wait={LONG_POLL_S}"
        )
        return status, body, time.monotonic()

    def worker(self) -> int:
        """The process that accepted this connection."""
        local = self.conn.sock.getsockname()[1]
        for pid in self.target.workers():
            for found in psutil.Process(pid).net_connections(kind="tcp"):
                if (
                    found.raddr
                    and found.raddr.port == local
                    and found.laddr.port == self.target.port
                ):
                    return pid
        raise AssertionError(f"no process of {self.target.base} holds port {local}")

    def close(self) -> None:
        self.conn.close()


def polls_on_every_worker(target: Server, token: str, limit: int = 200) -> list[Poll]:
    """Connections to `target` until each of its workers holds at least two (the kernel hands
    a new connection to whichever worker accepts first)."""
    polls: list[Poll] = []
    held: dict[int, int] = dict.fromkeys(target.workers(), 0)
    while min(held.values()) < 2:
        assert len(polls) < limit, f"{limit} connections did not reach every worker: {held}"
        if polls:
            time.sleep(0.02)  # let another worker's loop come round to accept
        poll = Poll(target, token)
        poll.current()  # answered: accepted, so its worker is known
        held[poll.worker()] += 1
        polls.append(poll)
    return polls


def agreed_state(polls: list[Poll]) -> tuple[str, int]:
    """The one (session, serial) every connection's server holds, once they agree (a server
    that is not the publisher loads a new serial a moment after it is stored)."""
    deadline = time.monotonic() + DEADLINE_S
    while len(states := {poll.current() for poll in polls}) != 1:
        assert time.monotonic() < deadline, states
        time.sleep(0.1)
    (state,) = states
    return state


def long_poll_all(
    polls: list[Poll], state: tuple[str, int], change: Callable[[], None]
) -> tuple[float, list[tuple[int, dict[str, object] | None, float]]]:
    """Start a long poll on every connection, wait until each is waiting, make `change`:
    (the time the change was made, each poll's answer)."""
    with ThreadPoolExecutor(max_workers=len(polls)) as pool:
        futures: list[Future[tuple[int, dict[str, object] | None, float]]] = [
            pool.submit(p.wait_past, state) for p in polls
        ]
        time.sleep(1.0)  # every request sent and parked in its server (they answer only on news)
        assert not any(f.done() for f in futures), [f.result() for f in futures if f.done()]
        changed = time.monotonic()
        change()
        return changed, [f.result(timeout=LONG_POLL_S + 10) for f in futures]


def report_binding(target: Server, registry: Registry, subscriber: str, address: str) -> None:
    """A binding start through the API (PUT /api/v1/isps/{id}/bindings) of `target`."""
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    try:
        event = {"event": "start", "subscriber_id": subscriber, "session_id": f"s-{address}",
                 "address": address}  # fmt: skip
        conn.request(
            "PUT",
            f"/api/v1/isps/{registry.isp_id}/bindings",
            body=json.dumps({"events": [event]}),
            headers={
                "Authorization": f"Bearer {registry.isp_token}",
                "Content-Type": "application/json",
            },
        )
        answer = conn.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 200 and body == {"results": [{"status": "stored"}]}, body
    finally:
        conn.close()


def advisory_holders(url: str) -> list[str]:
    """application_name of every session holding the publisher's advisory lock in `url`'s
    database ("vpnreg serve pid=N")."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.database = (SELECT oid FROM pg_database "
                    "                  WHERE datname = current_database()) "
                    "AND (l.classid::bigint << 32) + l.objid::bigint = :key"
                ),
                {"key": ADVISORY_KEY},
            ).all()
            return [str(r[0]) for r in rows]
    finally:
        engine.dispose()


def publisher_pid(url: str) -> int:
    """The process that publishes now (exactly one holds the lock)."""
    holders = advisory_holders(url)
    assert len(holders) == 1, holders
    name = holders[0]
    assert name.startswith("vpnreg serve pid="), name
    return int(name.removeprefix("vpnreg serve pid="))


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
