"""`vpnreg serve` as a child process of a benchmark, on a free port of 127.0.0.1, until the block
ends: the one way the load benchmarks start the registry's server (its log in the work
directory; a server that does not answer /healthz within 30 s is an error naming that log)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

#: Functional deadline for the server to answer /healthz.
_START_S = 30.0


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Served:
    base: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def vpnreg_serve(
    vpnreg: Path,
    env: dict[str, str],
    cwd: Path,
    *,
    prefix: Sequence[str] = (),
    args: Sequence[str] = (),
    log_name: str = "serve.log",
) -> Iterator[Served]:
    """`[prefix...] vpnreg serve --port P [args...]`; `prefix` is e.g. a taskset pinning."""
    port = free_port()
    log_path = cwd / log_name
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*prefix, str(vpnreg), "serve", "--port", str(port), *args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + _START_S
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"server did not start; see {log_path}")
                time.sleep(0.2)
            yield Served(base, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
