"""A feed app over a committed registry, and a real uvicorn server on 127.0.0.1 for it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI

from vpnreg.clock import Clock
from vpnreg.core.feed import key_id
from vpnreg.settings import Settings
from vpnreg.web.feed import FeedOptions, FeedServer, Timer, install_feed

FAST = FeedOptions(check_interval_s=0.05, publish_interval_s=3600.0, max_wait_s=10.0, max_deltas=3)


def feed_app(
    url: str, key_dir: Path, clock: Clock, options: FeedOptions = FAST, timer: Timer | None = None
) -> tuple[FastAPI, FeedServer]:
    settings = Settings(
        database_url=url, feed_key=key_dir / "feed.key", allow_documentation_prefixes=True
    )
    app = FastAPI()
    return app, install_feed(app, settings, clock=clock, options=options, timer=timer)


def trusted(server: FeedServer) -> dict[str, Ed25519PublicKey]:
    public = server.signing_key().public_key()
    return {key_id(public): public}


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn on a free 127.0.0.1 port in a thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
