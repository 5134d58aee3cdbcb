"""`vpnreg feed publish|snapshot|mode` and `vpnreg tokens ...` as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.console import VPNREG
from tests.feed_server.flow import bank_registration
from tests.registry.conftest import build_world, make_config
from vpnreg.clock import SystemClock
from vpnreg.core.feed import is_compact
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import AuditLogRow

#: Real vpnreg processes: publish, snapshot, pull and tokens.
pytestmark = pytest.mark.slow


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    where: Path
    url: str

    def __call__(self, *args: str) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VPNREG_")} | {
            "VPNREG_DATABASE_URL": self.url,
            "VPNREG_FEED_KEY": str(self.where / "keys" / "feed.key"),
            "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
        }
        proc = subprocess.run(
            [str(VPNREG), *args], cwd=self.where, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path) -> Cli:
    upgrade(sqlite_url)
    return Cli(tmp_path, sqlite_url)


def pull(cli: Cli, snapshot: Path, state: str = "state") -> Result:
    return cli(
        "feed", "pull", "--feed", str(snapshot), "--trust", str(cli.where / "keys" / "feed.pub"),
        "--state-dir", str(cli.where / state),
    )  # fmt: skip


def test_snapshot_of_an_empty_registry_is_valid_and_pulled(cli: Cli) -> None:
    out = cli.where / "snapshot.json"
    made = cli("feed", "snapshot", "--out", str(out), "--expires", "12h")
    assert made.code == 0, made.err
    doc = json.loads(out.read_bytes())
    assert (doc["type"], doc["serial"], doc["entries"]) == ("snapshot", 1, [])
    assert doc["mode"] == {"default": "enforce", "per_protocol": {}}
    assert (cli.where / "keys" / "feed.key").stat().st_mode & 0o077 == 0
    pulled = pull(cli, out)
    assert pulled.code == 0, pulled.err
    assert "serial 1, 0 entries" in pulled.out and "(updated)" in pulled.out


def test_snapshot_compact_writes_the_compact_form_which_pull_reads(cli: Cli) -> None:
    out = cli.where / "allowlist.compact"
    made = cli("feed", "snapshot", "--out", str(out), "--compact")
    assert made.code == 0, made.err
    assert made.out.startswith("compact snapshot: session ") and "serial 1, 0 entries" in made.out
    assert is_compact(out.read_bytes())
    pulled = pull(cli, out)
    assert pulled.code == 0, pulled.err
    assert "serial 1, 0 entries" in pulled.out and "(updated)" in pulled.out
    # the gateway's last good copy is the JSON document all the same
    held = json.loads((cli.where / "state" / "snapshot.json").read_bytes())
    assert (held["type"], held["serial"], held["entries"]) == ("snapshot", 1, [])


def test_snapshot_holds_the_registry_and_mode_is_regulator_only(cli: Cli) -> None:
    engine = make_engine(cli.url)
    config = make_config()
    now = SystemClock().now()
    try:
        with make_session_factory(engine)() as session:
            world = build_world(session, now, config)
            app = bank_registration(session, world, config, now, "192.0.2.0/24", ["198.51.100.7"])
            app_id = app.id
        published = cli("feed", "publish")
        assert published.code == 0, published.err
        assert "serial 1 (created), 1 entries" in published.out
        assert "(unchanged)" in cli("feed", "publish").out

        refused = cli("feed", "mode", "dry-run", "--actor", "ali", "--reason", "test")
        assert refused.code == 1 and "regulator" in refused.err
        assert cli("feed", "mode", "off", "--actor", "reg1", "--reason", "test").code == 2
        unexplained = cli("feed", "mode", "dry-run", "--actor", "reg1")
        assert unexplained.code == 2 and "--reason is required" in unexplained.err
        switched = cli(
            "feed", "mode", "dry-run", "--protocol", "openvpn", "--actor", "reg1",
            "--reason", "openvpn dry run while a classifier fix is checked",
        )  # fmt: skip
        assert switched.code == 0, switched.err
        assert "serial 2" in switched.out and "openvpn=dry-run" in switched.out

        out = cli.where / "snapshot.json"
        assert cli("feed", "snapshot", "--out", str(out), "--expires", "soon").code == 2
        assert cli("feed", "snapshot", "--out", str(out)).code == 0
        doc = json.loads(out.read_bytes())
        assert doc["serial"] == 2
        assert doc["mode"] == {"default": "enforce", "per_protocol": {"openvpn": "dry-run"}}
        assert doc["version"] == 2
        until = doc["entries"][0]["valid_until"]
        # the exclusive end: the start of the day after the last day, in the regulator's zone
        assert until.endswith("T19:00:00Z")
        assert doc["entries"] == [
            {"prefix": "192.0.2.0/24", "peers": ["198.51.100.7/32"],
             "registration_id": app_id, "valid_until": until, "ports": [0, 65535],
             "protocols": []}
        ]  # fmt: skip
        pulled = pull(cli, out)
        assert pulled.code == 0 and "serial 2, 1 entries" in pulled.out, pulled.err
        with make_session_factory(engine)() as session:
            actors = session.scalars(
                select(AuditLogRow.actor).where(AuditLogRow.action == "feed.mode")
            ).all()
        assert list(actors) == ["reg1"]
    finally:
        engine.dispose()


def test_nft_export_since_a_serial_writes_only_the_changes(cli: Cli) -> None:
    engine = make_engine(cli.url)
    config = make_config()
    now = SystemClock().now()
    try:
        with make_session_factory(engine)() as session:
            world = build_world(session, now, config)
            bank_registration(session, world, config, now, "192.0.2.0/24")
            assert "serial 1 (created)" in cli("feed", "publish").out
            full = cli("feed", "export", "--format", "nft")
            assert full.code == 0 and "add element inet vpnreg_allow allow4 {" in full.out
            bank_registration(session, world, config, now, "203.0.113.0/24")
        out = cli.where / "changes.nft"
        done = cli("feed", "export", "--format", "nft", "--since", "1", "--out", str(out))
        assert done.code == 0, done.err
        assert "nft changes from serial 1 to serial 2 of feed session" in done.err
        assert "0 elements deleted, 2 created" in done.err
        text = out.read_text()
        assert "create element inet vpnreg_allow allow4 {\n\t203.0.113.0/24\n}" in text
        assert "192.0.2.0/24" not in text and "delete element" not in text and "flush" not in text
        # already current: nothing to change
        same = cli("feed", "export", "--format", "nft", "--since", "2")
        assert same.code == 0 and "0 elements deleted, 0 created" in same.err
        unknown = cli("feed", "export", "--format", "nft", "--since", "9")
        assert unknown.code == 1 and "serial 9 cannot be reached" in unknown.err
        assert unknown.err.count("\n") == 1
        assert cli("feed", "export", "--format", "txt", "--since", "1").code == 2
    finally:
        engine.dispose()


def test_tokens_create_list_revoke(cli: Cli) -> None:
    made = cli("tokens", "create", "--role", "gateway", "--name", "gw-karachi-1")
    assert made.code == 0, made.err
    secret = made.out.strip()
    assert secret.startswith("vpnreg_") and "\n" not in secret
    assert "shown only once" in made.err
    listed = cli("tokens", "list")
    assert listed.code == 0
    fields = listed.out.strip().split("\t")
    assert fields[:3] == ["1", "gateway", "gw-karachi-1"] and fields[-1] == "active"
    assert secret not in listed.out
    assert cli("tokens", "create", "--role", "system", "--name", "x").code == 1
    revoked = cli("tokens", "revoke", "1")
    assert (revoked.code, revoked.out.strip()) == (0, "token 1 (gw-karachi-1) revoked")
    assert "revoked 20" in cli("tokens", "list").out
    assert cli("tokens", "list", "--active").out == ""
    again = cli("tokens", "revoke", "1")
    assert again.code == 1 and "already revoked" in again.err
    assert cli("tokens", "revoke", "99").code == 1
