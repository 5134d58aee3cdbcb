"""`vpnreg serve` as a child process of a benchmark, on a free port of 127.0.0.1, until the block
ends: the one way the load benchmarks start the registry's server (a server that does not
answer /healthz within 60 s is an error naming its log)."""

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
_START_S = 60.0


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
    log_path: Path,
    *,
    cwd: Path | None = None,
    prefix: Sequence[str] = (),
    args: Sequence[str] = (),
) -> Iterator[Served]:
    """`[prefix...] vpnreg serve --port P [args...]`, its output in `log_path`; `prefix` is
    e.g. a taskset pinning."""
    port = free_port()
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
                    raise RuntimeError(f"vpnreg serve did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield Served(base, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
