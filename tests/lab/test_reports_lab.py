"""Issue 19's lab test: two real gateway agents report to the real registry, and a registered
client blocked by the one held on an old feed shows on the applicant's page as blocked by that
gateway, with its stale serial.

The registry (`vpnreg serve`, SQLite) runs in the lab's gateway namespace. Its feed is taken as a
signed snapshot file before A's address is registered; then the bank's registration of A's /32 is
approved. Two agents watch the same interface: "gw-current" long-polls the registry's feed
(dry-run), "gw-old-feed" is deliberately held on the old snapshot file (nftables, so it really
blocks). Both report every 10 s with the gateway token. A's WireGuard tunnel is then blocked by
gw-old-feed alone, and the bank applicant's application page, fetched through the portal with a
real sign-in, shows gw-old-feed's unregistered flows in A's /24 with serial 1 beside
gw-current's registered flows at the registry's serial.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.console import VPNREG
from tests.lab.conftest import Tunnels
from tests.lab.netlab import A_IP, Daemon, Lab, wait_until
from tests.lab.test_gateway_lab import new_wireguard_flow
from tests.registry import flow
from tests.registry.conftest import PASSWORD, build_world, make_config
from vpnreg.core.review import Role
from vpnreg.feedkeys import ensure_dev_key, public_key_path
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.services.gateway_reports import registration_flows
from vpnreg.registry.services.tokens import create_token

pytestmark = pytest.mark.lab

SERVE_PORT = 18001  # inside the gateway namespace, which is the lab's own
REPORT_INTERVAL_S = 10
WIREGUARD_PORT = 41500
HOME = "198.51.100.0/24"

#: Signs in through the portal's form as a browser does and prints the application page.
PAGE = """
import re, sys, httpx
base, username, password, path = sys.argv[1:5]
with httpx.Client(base_url=base, timeout=30) as http:
    form = http.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)[1]
    signed = http.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token})
    assert signed.status_code in (200, 303), signed.status_code
    page = http.get(path)
    assert page.status_code == 200, page.status_code
    sys.stdout.write(page.text)
"""


@dataclass
class Stack:
    lab: Lab
    url: str
    registration_id: int
    current: Daemon
    old_feed: Daemon
    verdicts_current: Path
    verdicts_old: Path

    def lines(self, verdicts: Path) -> list[dict[str, object]]:
        if not verdicts.exists():
            return []
        found = [json.loads(x) for x in verdicts.read_text().splitlines()]
        return [x for x in found if WIREGUARD_PORT in (x["src_port"], x["dst_port"])]


def _wait_for(daemon: Daemon, pattern: str, timeout_s: float = 30) -> None:
    def seen() -> bool:
        text = daemon.log.read_text("utf-8", errors="replace")
        assert daemon.alive(), text
        return re.search(pattern, text) is not None

    assert wait_until(seen, timeout_s, 0.1), daemon.log.read_text("utf-8", errors="replace")


def _agent_config(
    tmp: Path, name: str, lab: Lab, *, feed: str, enforce: str, token: str, key: Path
) -> tuple[Path, Path]:
    verdicts = tmp / f"verdicts-{name}.jsonl"
    config = tmp / f"{name}.toml"
    config.write_text(
        f'interface = "{lab.if_gw_a}"\n'
        f'feed = "{feed}"\n'
        f'trust = ["{public_key_path(key)}"]\n'
        f'token = "{token}"\n'
        f'state_dir = "{tmp / ("state-" + name)}"\n'
        f'home = ["{HOME}"]\n'
        f'enforce = "{enforce}"\n'
        f'verdicts = "{verdicts}"\n'
        f'report_url = "http://127.0.0.1:{SERVE_PORT}"\n'
        f'gateway_id = "{name}"\n'
        f"report_interval_s = {REPORT_INTERVAL_S}\n"
    )
    return config, verdicts


@pytest.fixture
def stack(lab: Lab, tunnels: Tunnels, tmp_path: Path) -> Iterator[Stack]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    key = tmp_path / "feed.key"
    ensure_dev_key(key)
    env = {
        "VPNREG_DATABASE_URL": url,
        "VPNREG_DATA_DIR": str(tmp_path),
        "VPNREG_SECRET_KEY": "lab-reports-secret-" + "k" * 24,
        "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
        "VPNREG_FEED_KEY": str(key),
    }
    engine = make_engine(url)
    config, now = make_config(), dt.datetime.now(dt.UTC)
    with make_session_factory(engine)() as session:
        world = build_world(session, now, config)
        _, token = create_token(
            session, name="lab-gw", role=Role.GATEWAY, actor="cli:admin", now=now
        )
    # the old feed: signed before A's address is registered
    old_snapshot = tmp_path / "old-snapshot.json"
    done = lab.run(
        "env", *(f"{k}={v}" for k, v in env.items()), str(VPNREG), "feed", "snapshot",
        "--out", str(old_snapshot), check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with make_session_factory(engine)() as session:
        registration = flow.approved(
            session, world, config, dt.datetime.now(dt.UTC), [(f"{A_IP}/32", [])], bank=True
        )
        registration_id = registration.id
    engine.dispose()

    started: list[Daemon] = []
    try:
        serve = lab.spawn(
            "serve-reports", lab.ns_gw,
            [str(VPNREG), "serve", "--host", "127.0.0.1", "--port", str(SERVE_PORT)], env=env,
        )  # fmt: skip
        started.append(serve)
        _wait_for(serve, r"Application startup complete")
        current_config, verdicts_current = _agent_config(
            tmp_path, "gw-current", lab, enforce="dry-run", token=token, key=key,
            feed=f"http://127.0.0.1:{SERVE_PORT}/feed/v1",
        )  # fmt: skip
        old_config, verdicts_old = _agent_config(
            tmp_path, "gw-old-feed", lab, enforce="nftables", token=token, key=key,
            feed=str(old_snapshot),
        )  # fmt: skip
        current = lab.spawn(
            "gw-current", lab.ns_gw, [str(VPNREG), "gateway", "--config", str(current_config)]
        )
        started.append(current)
        old_feed = lab.spawn(
            "gw-old-feed", lab.ns_gw, [str(VPNREG), "gateway", "--config", str(old_config)]
        )
        started.append(old_feed)
        for agent in (current, old_feed):
            _wait_for(agent, r"started in")
        time.sleep(1.0)  # NFStream's meter is up once the agent logs its start; let it settle
        yield Stack(lab, url, registration_id, current, old_feed, verdicts_current, verdicts_old)
        for agent in (old_feed, current):
            agent.process.send_signal(signal.SIGTERM)
            assert agent.process.wait(timeout=15) == 0, agent.log.read_text()
    finally:
        for daemon in reversed(started):
            daemon.stop()
        # the next test starts from a working WireGuard tunnel on its usual kind of port
        new_wireguard_flow(lab, 51904)
        assert lab.tunnel_works(tunnels.wireguard, within_s=15), "wireguard did not recover"


def test_a_gateway_on_an_old_feed_shows_on_the_applicants_page_with_its_serial(
    stack: Stack, lab: Lab, tunnels: Tunnels
) -> None:
    wireguard = tunnels.wireguard
    new_wireguard_flow(lab, WIREGUARD_PORT)
    lab.ping(lab.ns_a, wireguard.b_inner, count=3)  # traffic makes the flow (may pass once)
    assert wait_until(
        lambda: bool(stack.lines(stack.verdicts_old)) and bool(stack.lines(stack.verdicts_current)),
        15,
    ), (stack.old_feed.tail(), stack.current.tail())
    # the old feed does not hold A: unregistered and blocked; the current one: registered
    assert {(x["verdict"], x["action"]) for x in stack.lines(stack.verdicts_old)} == {
        ("unregistered", "block")
    }
    assert {(x["verdict"], x["registration_id"]) for x in stack.lines(stack.verdicts_current)} == {
        ("registered", stack.registration_id)
    }
    assert lab.tunnel_blocked(wireguard)

    # within two report intervals both gateways' counts are in the registry
    engine = make_engine(stack.url)
    try:

        def reported() -> list[tuple[str, str | None, str, int | None]]:
            with make_session_factory(engine)() as session:
                rows = registration_flows(
                    session, registration_id=stack.registration_id, now=dt.datetime.now(dt.UTC)
                )
            return sorted((r.gateway_id, r.prefix, r.verdict, r.applied_serial) for r in rows)

        assert wait_until(lambda: len(reported()) == 2, 3 * REPORT_INTERVAL_S, 0.5), reported()
        (current_row, old_row) = reported()
    finally:
        engine.dispose()
    assert current_row[:3] == ("gw-current", None, "registered")
    assert old_row == ("gw-old-feed", "198.51.100.0/24", "unregistered", 1)
    assert current_row[3] is not None and current_row[3] > 1

    # the applicant's own page says it: which gateway, counted how, under which serial
    python = shutil.which("python3") or sys.executable
    done = lab.inside(
        lab.ns_gw, sys.executable if "venv" in sys.executable else python, "-c", PAGE,
        f"http://127.0.0.1:{SERVE_PORT}", "bina", PASSWORD,
        f"/applications/{stack.registration_id}", check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = done.stdout[done.stdout.index('id="gateway-flows"') :]
    table = table[: table.index("</section>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    old = [r for r in rows if "gw-old-feed" in r]
    assert old and "unregistered in" in old[0] and "198.51.100.0/24" in old[0], table
    assert re.search(r"<td>1(?: \(stale\))?</td>", old[0]), old[0]
    assert any("gw-current" in r and "this registration" in r for r in rows), table
