"""deploy/nginx/vpnreg.conf: `nginx -t`, then a real nginx with it in front of a real static
feed (`vpnreg feed publish --to DIR`) and a real `vpnreg serve`, over TLS with a self-signed
certificate made here (rendering.self_signed).

The site is rendered as docs/deployment.md tells operators (host names, certificate paths, feed
directory, upstream), inside a main nginx.conf whose pid, logs and temporary files are in the
test's directory; nginx runs in the foreground as a child of the test (tests/fixtures/nginx.py
does the same for its own configuration). The gateway's FeedClient trusts the certificate
through SSL_CERT_FILE, which httpx reads, as an operator with a private CA would set it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.concurrency.server import vpnreg_serve
from tests.deploy.rendering import (
    FEED_HOST,
    NGINX_CONFIG,
    REGISTRY_HOST,
    NginxSite,
    render_nginx,
    self_signed,
)
from tests.feed_server.flow import bank_registration
from tests.feed_server.test_cli import Cli
from tests.fixtures.nginx import NGINX
from tests.registry.conftest import build_world, make_config
from vpnreg.agent.feedclient import FeedClient, PollStatus, load_public_keys
from vpnreg.clock import SystemClock
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.feed_static import NOTIFICATION_FILE
from vpnreg.settings import Settings
from vpnreg.web.limits import MAX_BINDINGS_BYTES, MAX_BODY_BYTES, MAX_UPLOAD_BYTES

#: Real nginx, vpnreg serve and vpnreg processes.
pytestmark = pytest.mark.slow

#: Functional deadline for nginx to accept connections (not a speed assertion).
_START_DEADLINE_S = 30.0


def _nginx() -> str:
    if shutil.which(NGINX) is None:
        pytest.fail(f"{NGINX} is missing: install the Debian package nginx")
    return NGINX


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _render(tmp_path: Path, feed_dir: Path, upstream: str) -> NginxSite:
    return render_nginx(
        tmp_path / "nginx",
        certificate=self_signed(tmp_path / "tls"),
        feed_dir=feed_dir,
        upstream=upstream,
        http_port=_free_port(),
        https_port=_free_port(),
    )


def _nginx_command(site: NginxSite, *extra: str) -> list[str]:
    prefix = str(site.prefix)
    return [_nginx(), "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(site.main), *extra]


def test_nginx_t_accepts_the_site(tmp_path: Path) -> None:
    feed_dir = tmp_path / "feed"
    feed_dir.mkdir()
    site = _render(tmp_path, feed_dir, "127.0.0.1:8000")
    result = subprocess.run(
        _nginx_command(site, "-t"), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    # and it would refuse a broken one
    site.prefix.joinpath("vpnreg.conf").write_text(
        site.prefix.joinpath("vpnreg.conf").read_text().replace("proxy_read_timeout", "proxy_read")
    )
    broken = subprocess.run(
        _nginx_command(site, "-t"), capture_output=True, text=True, timeout=60, check=False
    )
    assert broken.returncode != 0 and 'unknown directive "proxy_read"' in broken.stderr


def _location_block(config: str, location: str) -> str:
    start = config.index(f"location {location} {{")
    return config[start : config.index("}", start)]


def test_the_long_poll_outlives_the_longest_wait_the_server_allows() -> None:
    # The server answers /notify after at most VPNREG_FEED_MAX_WAIT_S; nginx must not cut the
    # upstream off before that, nor buffer the answer; the other locations keep 60 s.
    feed = _location_block(NGINX_CONFIG.read_text(), "/feed/v1/")
    timeout = re.search(r"proxy_read_timeout (\d+)s;", feed)
    assert timeout is not None and int(timeout.group(1)) > Settings().feed_max_wait_s
    assert "proxy_buffering off;" in feed


def _accepting(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def running(site: NginxSite) -> Iterator[NginxSite]:
    process = subprocess.Popen(
        _nginx_command(site), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + _START_DEADLINE_S
        while not (_accepting(site.https_port) and _accepting(site.http_port)):
            if process.poll() is not None or time.monotonic() > deadline:
                errors = (site.prefix / "error.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"nginx did not start (exit {process.poll()}): {errors}")
            time.sleep(0.05)
        yield site
    finally:
        process.terminate()
        try:
            process.wait(timeout=_START_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _access_log(site: NginxSite) -> list[tuple[int, str, str]]:
    lines = (site.prefix / "access.log").read_text().splitlines()
    return [(int(s), host, uri) for s, host, uri in (line.split(" ", 2) for line in lines)]


def _next_requests(site: NginxSite, seen: int) -> list[tuple[int, str, str]]:
    # nginx logs a request after its answer went out: wait for the line (a functional
    # deadline, not a speed assertion).
    deadline = time.monotonic() + _START_DEADLINE_S
    while len(log := _access_log(site)) <= seen and time.monotonic() < deadline:
        time.sleep(0.02)
    return log[seen:]


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path) -> Cli:
    upgrade(sqlite_url)
    return Cli(tmp_path, sqlite_url)


def test_the_static_feed_is_served_over_tls_with_its_cache_rules(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_dir = tmp_path / "srv-feed"
    feed_dir.mkdir()
    engine = make_engine(cli.url)
    config = make_config()
    try:
        with make_session_factory(engine)() as session:
            world = build_world(session, SystemClock().now(), config)
            bank_registration(session, world, config, SystemClock().now(), "192.0.2.0/24")
        published = cli("feed", "publish", "--to", str(feed_dir))
        assert published.code == 0, published.err
        site = _render(tmp_path, feed_dir, "127.0.0.1:9")
        chain = str(tmp_path / "tls" / "fullchain.pem")
        base = f"https://{FEED_HOST}:{site.https_port}"
        with running(site), httpx.Client(verify=ssl.create_default_context(cafile=chain)) as web:
            note = web.get(f"{base}/{NOTIFICATION_FILE}", headers={"Accept-Encoding": "gzip"})
            assert note.status_code == 200
            assert note.headers["content-type"] == "application/json"
            assert note.headers["cache-control"] == "public, max-age=30, must-revalidate"
            notification = note.json()
            snapshot = web.get(f"{base}/{notification['snapshot']['uri']}")
            assert snapshot.status_code == 200
            assert snapshot.headers["content-type"] == "application/gzip"
            assert "content-encoding" not in snapshot.headers
            assert "immutable" in snapshot.headers["cache-control"]
            assert json.loads(gzip.decompress(snapshot.content))["serial"] == 1
            # anything else in the directory is not served; plain HTTP only redirects
            (feed_dir / "notes.txt").write_text("not for gateways")
            assert web.get(f"{base}/notes.txt").status_code == 404
            assert web.get(f"{base}/").status_code == 404
            plain = web.get(f"http://{FEED_HOST}:{site.http_port}/{NOTIFICATION_FILE}")
            assert plain.status_code == 301
            assert plain.headers["location"].startswith(f"https://{FEED_HOST}")

            # The gateway's own client, trusting the certificate as an operator would.
            monkeypatch.setenv("SSL_CERT_FILE", chain)
            client = FeedClient(
                source=f"{base}/{NOTIFICATION_FILE}",
                trusted=load_public_keys([cli.where / "keys" / "feed.pub"]),
                state_dir=tmp_path / "gateway",
                clock=SystemClock(),
            )
            with client:
                first = client.poll()
                assert first.status is PollStatus.UPDATED and first.state is not None
                assert (first.state.serial, len(first.state.entries)) == (1, 1)
                seen = len(_access_log(site))
                assert client.poll().status is PollStatus.UNCHANGED
                assert _next_requests(site, seen) == [(304, FEED_HOST, f"/{NOTIFICATION_FILE}")]

                with make_session_factory(engine)() as session:
                    bank_registration(
                        session, world, config, SystemClock().now(), "198.51.100.0/24"
                    )
                assert cli("feed", "publish", "--to", str(feed_dir)).code == 0
                moved = client.poll()
                assert moved.status is PollStatus.UPDATED and moved.state is not None
                assert (moved.state.serial, len(moved.state.entries)) == (2, 2)
    finally:
        engine.dispose()


#: (method, path, content type, the server's cap for them: vpnreg.web.limits)
BODY_CAPS = [
    ("POST", "/api/v1/applications", "application/json", MAX_BODY_BYTES),
    ("POST", "/applications/1/submit", "application/x-www-form-urlencoded", MAX_BODY_BYTES),
    (
        "POST",
        "/api/v1/applications/1/documents",
        "multipart/form-data; boundary=b",
        MAX_UPLOAD_BYTES,
    ),
    ("POST", "/applications/1/documents", "multipart/form-data; boundary=b", MAX_UPLOAD_BYTES),
    ("POST", "/apply", "multipart/form-data; boundary=b", MAX_UPLOAD_BYTES),
    ("PUT", "/api/v1/isps/1/bindings", "application/json", MAX_BINDINGS_BYTES),
]


def _server_log(data: Path) -> list[str]:
    return (data / "server.log").read_text().splitlines()


def test_the_registry_is_proxied_over_tls_with_the_servers_body_limit(
    sqlite_url: str, tmp_path: Path
) -> None:
    upgrade(sqlite_url)
    data = tmp_path / "registry"
    data.mkdir()
    with vpnreg_serve(sqlite_url, data) as upstream:
        feed_dir = tmp_path / "feed"
        feed_dir.mkdir()
        site = _render(tmp_path, feed_dir, upstream.removeprefix("http://"))
        chain = str(tmp_path / "tls" / "fullchain.pem")
        base = f"https://{REGISTRY_HOST}:{site.https_port}"
        context = ssl.create_default_context(cafile=chain)
        with running(site), httpx.Client(verify=context, timeout=60) as web:
            health = web.get(f"{base}/healthz")
            assert health.status_code == 200
            assert health.headers["strict-transport-security"] == "max-age=31536000"
            # the address the registry sees is the client's, whatever it claims
            looked_up = web.get(
                f"{base}/api/v1/ip/192.0.2.1", headers={"X-Forwarded-For": "203.0.113.9"}
            )
            assert looked_up.status_code == 404  # not registered: the registry's answer
            assert looked_up.headers["content-type"] == "application/rdap+json"
            # Each address's cap is the server's: one byte more is refused by nginx, as the
            # server refuses it (problem+json), the cap itself reaches the server.
            for method, path, content_type, cap in BODY_CAPS:
                over = web.request(
                    method,
                    f"{base}{path}",
                    content=b"x" * (cap + 1),
                    headers={"Content-Type": content_type},
                )
                assert over.status_code == 413, path
                assert over.headers["content-type"] == "application/problem+json"
                assert over.json()["code"] == "body-too-large"
                seen = len(_server_log(data))
                at_cap = web.request(
                    method,
                    f"{base}{path}",
                    content=b"x" * cap,
                    headers={"Content-Type": content_type},
                )
                assert at_cap.status_code not in {413, 502}, (path, at_cap.status_code)
                answered = f'"{method} {path} HTTP/1.1" {at_cap.status_code}'
                assert any(answered in line for line in _server_log(data)[seen:]), answered
            # the feed's long poll goes through (a gateway token is needed: 401 without one)
            assert web.get(f"{base}/feed/v1/notify?since=0&wait=1").status_code == 401
        log = "".join(_server_log(data))
        assert "203.0.113.9" not in log
        assert '127.0.0.1:0 - "GET /api/v1/ip/192.0.2.1 HTTP/1.1" 404' in log, log
