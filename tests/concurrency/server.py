"""`vpnreg serve` as a user starts it (the console script, its defaults), over a prepared
registry with applicants that hold user-bound API tokens, for tests that load it from many
clients at once."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.console import VPNREG
from tests.registry.conftest import add_user, build_world, make_config
from vpnreg.core.review import Role
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.services.tokens import create_token

SECRET = "contention-test-secret-" + "k" * 24


@dataclass(frozen=True)
class Registry:
    """A prepared registry: its URL, the ISP applicants apply through, and one user-bound
    applicant token per client, with the applicant's username."""

    url: str
    isp_id: int
    tokens: list[tuple[str, str]]


def prepare(url: str, applicants: int) -> Registry:
    """Migrate `url` and add `applicants` applicant users (one organisation) with tokens."""
    upgrade(url)
    now = dt.datetime.now(dt.UTC)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            world = build_world(session, now, make_config())
            tokens = []
            for i in range(applicants):
                name = f"load{i:02d}"
                user = add_user(session, name, Role.APPLICANT, now, organisation_id=world.soft_org)
                _, token = create_token(
                    session, name=f"{name}-api", user_id=user.id, actor="cli:admin", now=now
                )
                tokens.append((name, token))
            return Registry(url=url, isp_id=world.isp, tokens=tokens)
    finally:
        engine.dispose()


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def vpnreg_serve(url: str, data_dir: Path, *options: str) -> Iterator[str]:
    """`vpnreg serve` on a free 127.0.0.1 port, with extra command-line `options`; yields the
    base URL, stops it after."""
    with serve_process(url, data_dir, *options) as (base, _process):
        yield base


@contextlib.contextmanager
def serve_process(
    url: str, data_dir: Path, *options: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As vpnreg_serve, also yielding the process (for benchmarks that watch its memory);
    `env` adds to or overrides the server's environment."""
    port = _free_port()
    env = {
        **os.environ,
        "VPNREG_DATABASE_URL": url,
        "VPNREG_DATA_DIR": str(data_dir),
        "VPNREG_SECRET_KEY": SECRET,
        "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
        "VPNREG_FEED_KEY": str(data_dir / "feed.key"),
        **(env or {}),
    }
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(VPNREG), "serve", "--host", "127.0.0.1", "--port", str(port), *options],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"vpnreg serve did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield base, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
