"""The gateway's reporter (agent/reporter.py): spool on disk, send oldest first, resend once.

With a fake transport (unit) and with a real HTTP server on localhost that is down, then up.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.agent_gateway.test_pipeline import FakeFeed, web, wg
from vpnreg.agent.config import ConfigError, resolve
from vpnreg.agent.daemon import GatewayDaemon
from vpnreg.agent.enforce import DryRunBackend
from vpnreg.agent.reporter import REPORTS_PATH, HttpTransport, Reporter
from vpnreg.clock import FrozenClock
from vpnreg.core.policy import Action, Decision, FlowKey, Rule, Verdict

HOME = (ipaddress.ip_network("198.51.100.0/24"),)
NOW = dt.datetime(2026, 12, 4, 16, 5, tzinfo=dt.UTC)


class FakeTransport:
    def __init__(self) -> None:
        self.answers: list[int | Exception] = []
        self.bodies: list[bytes] = []

    def send(self, body: bytes) -> int:
        answer = self.answers.pop(0) if self.answers else 201
        if isinstance(answer, Exception):
            raise answer
        self.bodies.append(body)
        return answer


def observe(reporter: Reporter, n: int = 1) -> None:
    flow = FlowKey(
        ipaddress.ip_address("198.51.100.9"), 51820, ipaddress.ip_address("203.0.113.5"), 41000, 17
    )
    decision = Decision(Verdict.UNREGISTERED, Action.BLOCK, Rule.NOT_REGISTERED, None, 4, "x")
    for _ in range(n):
        reporter.observe(decision=decision, flow=flow, vpn_protocol="wireguard", home=HOME, now=NOW)


def make(tmp_path: Path, transport: object, **kw: int) -> Reporter:
    return Reporter(gateway_id="gw-1", spool_dir=tmp_path / "reports", transport=transport, **kw)  # type: ignore[arg-type]


def test_report_body_holds_aggregates_only(tmp_path: Path) -> None:
    transport = FakeTransport()
    reporter = make(tmp_path, transport)
    observe(reporter, 3)
    assert reporter.tick(now=NOW, feed=None, mode="dry-run") is not None
    (body,) = transport.bodies
    report = json.loads(body)
    assert set(report) == {"report_id", "gateway_id", "created", "mode", "feed", "counts"}
    assert report["counts"] == [
        {"hour": "2026-12-04T16:00:00Z", "protocol": "wireguard", "verdict": "unregistered",
         "prefix": "198.51.100.0/24", "flows": 3}
    ]  # fmt: skip
    for leak in (b"203.0.113.5", b"198.51.100.9", b"51820", b"41000"):
        assert leak not in body
    assert reporter.spooled() == []


def test_unreachable_registry_keeps_reports_and_sends_them_in_order(tmp_path: Path) -> None:
    transport = FakeTransport()
    reporter = make(tmp_path, transport)
    transport.answers = [httpx.ConnectError("down"), 503]
    observe(reporter)
    result = reporter.tick(now=NOW, feed=None, mode="dry-run")
    assert result is not None and result.pending == 1
    observe(reporter, 2)
    result = reporter.tick(now=NOW + dt.timedelta(minutes=5), feed=None, mode="dry-run")
    assert result is not None and result.pending == 2
    assert len(transport.bodies) == 1  # the oldest was offered, answered 503, kept
    # the registry is back: both go, the oldest first, each exactly once
    transport.bodies.clear()
    result = reporter.tick(now=NOW + dt.timedelta(minutes=10), feed=None, mode="dry-run")
    assert result is not None and (result.sent, result.pending) == (3, 0)
    flows = [sum(r["flows"] for r in json.loads(b)["counts"]) for b in transport.bodies]
    assert flows == [1, 2, 0]
    assert len({json.loads(b)["report_id"] for b in transport.bodies}) == 3


def test_refused_report_is_moved_aside_and_not_retried(tmp_path: Path) -> None:
    transport = FakeTransport()
    reporter = make(tmp_path, transport)
    transport.answers = [422]
    reporter.tick(now=NOW, feed=None, mode="dry-run")
    assert reporter.spooled() == []
    assert len(list((tmp_path / "reports" / "refused").iterdir())) == 1
    reporter.tick(now=NOW + dt.timedelta(minutes=5), feed=None, mode="dry-run")
    assert len(transport.bodies) == 2  # the refused one was sent once, the new one once


def test_spool_is_bounded_dropping_the_oldest(tmp_path: Path) -> None:
    transport = FakeTransport()
    reporter = make(tmp_path, transport, max_spooled=2)
    transport.answers = [OSError("down")] * 3
    for minutes in (0, 5, 10):
        observe(reporter, minutes + 1)
        reporter.tick(now=NOW + dt.timedelta(minutes=minutes), feed=None, mode="dry-run")
    kept = [json.loads(p.read_bytes()) for p in reporter.spooled()]
    assert [sum(r["flows"] for r in k["counts"]) for k in kept] == [6, 11]


def test_a_broken_spool_never_raises(tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("a file where the spool directory should be")
    reporter = make(tmp_path, FakeTransport())
    observe(reporter)
    assert reporter.tick(now=NOW, feed=None, mode="nftables") is None


class _Registry(BaseHTTPRequestHandler):
    """A registry stand-in that answers as the real endpoint does: 201 new, 200 a resend."""

    seen: dict[str, int]
    posts: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        report_id = json.loads(body)["report_id"]
        self.posts.append(report_id)
        ok = self.path == REPORTS_PATH and self.headers["Authorization"] == "Bearer tok"
        status = 401 if not ok else 200 if report_id in self.seen else 201
        if ok:
            self.seen.setdefault(report_id, len(self.seen))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def free_port() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    port = server.server_address[1]
    server.server_close()
    return int(port)


def test_real_http_server_down_then_up(tmp_path: Path, free_port: int) -> None:
    transport = HttpTransport(f"http://127.0.0.1:{free_port}", "tok")
    reporter = make(tmp_path, transport)
    observe(reporter)
    down = reporter.tick(now=NOW, feed=None, mode="dry-run")
    assert down is not None and down.pending == 1  # nothing listens: spooled
    handler = type("Registry", (_Registry,), {"seen": {}, "posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        up = reporter.tick(now=NOW + dt.timedelta(minutes=5), feed=None, mode="dry-run")
        assert up is not None and (up.sent, up.pending) == (2, 0)
        assert len(handler.seen) == 2 and len(handler.posts) == 2  # each sent once
    finally:
        server.shutdown()
        server.server_close()
        transport.close()


def test_the_daemon_reports_its_flows_on_stop_and_survives_a_dead_registry(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """`vpnreg gateway --report-url ... --gateway-id ...`: the pipeline counts each decided flow;
    stopping sends what is counted; a registry that cannot be reached changes nothing else."""
    transport = FakeTransport()
    transport.answers = [httpx.ConnectError("down")]
    daemon = GatewayDaemon(
        config_path=None,
        overrides={
            "pcap": tmp_path / "x.pcap", "feed": "/nonexistent/feed.json",
            "trust": ("/nonexistent/feed.pub",), "home": ("198.51.100.0/24",),
            "enforce": "dry-run", "state_dir": tmp_path / "state",
            "report_url": "http://registry.invalid", "gateway_id": "gw-7",
        },
        clock=clock, flow_source=lambda _cfg: [wg(), wg(sport=40001), web()],
        backend_factory=lambda _kind: DryRunBackend(clock),
        feed_client=FakeFeed(),  # type: ignore[arg-type]
        report_transport=transport, registry=CollectorRegistry(), err=io.StringIO(),
    )  # fmt: skip
    daemon.start()
    daemon.process()
    daemon.shutdown()
    assert "2 VPN" in daemon.summary()
    assert transport.bodies == []  # the registry was down: kept on disk
    (spooled,) = (tmp_path / "state" / "reports").glob("*.json")
    report = json.loads(spooled.read_bytes())
    assert report["gateway_id"] == "gw-7" and report["mode"] == "dry-run"
    assert report["feed"] is None
    assert report["counts"] == [
        {"hour": "2026-01-15T09:00:00Z", "protocol": "wireguard", "verdict": "unregistered",
         "prefix": "198.51.100.0/24", "flows": 2}
    ]  # fmt: skip
    daemon.report_once()  # the next interval: the registry is back
    assert len(transport.bodies) == 2 and json.loads(transport.bodies[0]) == report


def test_report_url_needs_a_gateway_id() -> None:
    with pytest.raises(ConfigError, match="gateway_id"):
        resolve(
            {}, {"pcap": Path("x.pcap"), "feed": "f", "trust": ("k",), "home": ("192.0.2.0/24",),
                 "enforce": "dry-run", "report_url": "http://registry"},
        )  # fmt: skip
