"""`vpnreg radius` as a real process, driven by Debian's radclient (freeradius-utils) from
another real process, on SQLite and on PostgreSQL: what it stores, what it answers, what it
drops, and its counters when it stops on SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyrad.packet import AcctPacket
from sqlalchemy import Engine, select, text

from tests.console import VPNREG
from tests.registry import flow
from tests.registry.conftest import build_world, make_config
from vpnreg.clock import SystemClock
from vpnreg.radius import VENDOR_DICTIONARY
from vpnreg.radius.server import load_dictionary
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import AuditLogRow, Binding

#: Real vpnreg and radclient processes.
pytestmark = pytest.mark.slow

SECRET = "radius-test-secret-7"
#: Subscribers with a subscriber-bound registration in force (ISP Nayatel).
SUBSCRIBERS = ("SUB-1", "SUB-2", "ACC-42", "ACC-43")
#: Functional deadline for the server to come up or go down (not a speed assertion).
_PROCESS_DEADLINE_S = 60.0


def _env(url: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VPNREG_")} | {
        "VPNREG_DATABASE_URL": url,
        "VPNREG_ALLOW_DOCUMENTATION_PREFIXES": "1",
    }


@dataclass
class Radius:
    """A migrated registry with registrations in force, and (once started) its RADIUS server."""

    url: str
    where: Path
    engine: Engine
    registrations: dict[str, int]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.where / "radius.log"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(VPNREG), *args], cwd=self.where, env=_env(self.url), capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def register_client(self, *options: str, secret: str = SECRET) -> None:
        (self.where / "secret").write_text(secret + "\n")
        done = self.cli(
            "isps", "radius-client", "Nayatel", "--address", "127.0.0.1",
            "--secret-file", str(self.where / "secret"), *options,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(VPNREG), "radius", "--listen", "127.0.0.1:0", "--stats-interval", "1"],
                cwd=self.where, env=_env(self.url), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + _PROCESS_DEADLINE_S
        while time.monotonic() < deadline:
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log.read_text())
            if found:
                self.port = int(found[1])
                return
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.05)
        pytest.fail(f"vpnreg radius did not start: {self.log.read_text()}")

    def stop(self, signum: int = signal.SIGTERM) -> dict[str, int]:
        """SIGTERM (or SIGINT); the server exits 0 and its last line holds the counters."""
        assert self.proc is not None
        self.proc.send_signal(signum)
        assert self.proc.wait(timeout=_PROCESS_DEADLINE_S) == 0, self.log.read_text()
        text = self.log.read_text()
        assert "Traceback" not in text, text
        final = re.findall(r"stopped; counters: (.*)", text)
        assert len(final) == 1, text
        return {k: int(v) for k, v in (pair.split("=") for pair in final[0].split())}

    def radclient(
        self, attributes: str, *, secret: str = SECRET, count: int = 1, timeout: int = 5,
        command: str = "acct",
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """One Accounting-Request (sent `count` times), its attributes in radclient's syntax."""
        return subprocess.run(
            ["radclient", "-d", str(self.where), "-x", "-c", str(count), "-t", str(timeout),
             "-r", "1", f"127.0.0.1:{self.port}", command, secret],
            input=attributes, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def bindings(self) -> list[tuple[str, str, str, int | None, int | None, bool]]:
        with make_session_factory(self.engine)() as session:
            rows = session.scalars(select(Binding).order_by(Binding.id)).all()
            return [
                (r.subscriber_id, r.session_id, r.address, r.port_lo, r.port_hi,
                 r.ended_at is None)
                for r in rows
            ]  # fmt: skip

    def valid_until(self, session_id: str) -> object:
        with make_session_factory(self.engine)() as session:
            return session.scalar(
                select(Binding.valid_until).where(Binding.session_id == session_id)
            )

    def lookup(self, address: str, port: int | None = None) -> int | None:
        """The registration holding `address` (at `port`) now, or None."""
        with make_session_factory(self.engine)() as session:
            found = services.lookup(
                session, address=address, now=SystemClock().now(), config=make_config(),
                port=port,
            )  # fmt: skip
            return found.registration_id if found.registered else None


@pytest.fixture
def radius(fresh_url: str, tmp_path: Path) -> Iterator[Radius]:
    if shutil.which("radclient") is None:
        pytest.fail("radclient not found: install the Debian package freeradius-utils")
    # radclient reads the vendor attribute from the shipped dictionary, as an ISP's proxy would.
    (tmp_path / "dictionary").write_text(f"$INCLUDE {VENDOR_DICTIONARY}\n")
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    config, now = make_config(), SystemClock().now()
    with make_session_factory(engine)() as session:
        world = build_world(session, now, config)
        registrations = {
            sub: flow.approved(session, world, config, now, [], subscriber_id=sub).id
            for sub in SUBSCRIBERS
        }
    server = Radius(fresh_url, tmp_path, engine, registrations)
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        engine.dispose()


def _answered(done: subprocess.CompletedProcess[str]) -> int:
    return done.stdout.count("Received Accounting-Response")


def _sent(done: subprocess.CompletedProcess[str]) -> int:
    return done.stdout.count("Sent Accounting-Request")


def test_start_interim_stop_ipv6_and_accounting_on(radius: Radius) -> None:
    radius.register_client()
    radius.start()
    start = 'User-Name = "SUB-1", Acct-Session-Id = "s1", Framed-IP-Address = 192.0.2.7'
    done = radius.radclient(f"Acct-Status-Type = Start, {start}")
    assert done.returncode == 0 and _answered(done) == 1, done.stdout + done.stderr
    assert radius.lookup("192.0.2.7") == radius.registrations["SUB-1"]
    assert radius.lookup("192.0.2.8") is None

    first_end = radius.valid_until("s1")
    time.sleep(1.1)  # the binding's end has whole seconds: let the next one be a later second
    done = radius.radclient(f"Acct-Status-Type = Interim-Update, {start}")
    assert done.returncode == 0 and _answered(done) == 1
    assert radius.valid_until("s1") > first_end  # type: ignore[operator]

    v6 = 'User-Name = "SUB-1", Acct-Session-Id = "s2", Delegated-IPv6-Prefix = 2001:db8:5::/56'
    done = radius.radclient(f"Acct-Status-Type = Start, {v6}")
    assert done.returncode == 0 and _answered(done) == 1
    assert radius.lookup("2001:db8:5:ff::1") == radius.registrations["SUB-1"]

    done = radius.radclient('Acct-Status-Type = Accounting-On, NAS-Identifier = "bng-1"')
    assert done.returncode == 0 and _answered(done) == 1
    alive = radius.radclient(  # RFC 5997: signed with a Message-Authenticator
        'NAS-Identifier = "bng-1", Message-Authenticator = 0x00', command="status"
    )
    assert alive.returncode == 0 and _answered(alive) == 1, alive.stdout + alive.stderr

    done = radius.radclient(f"Acct-Status-Type = Stop, {start}")
    assert done.returncode == 0 and _answered(done) == 1
    assert radius.lookup("192.0.2.7") is None
    assert radius.bindings() == [
        ("SUB-1", "s1", "192.0.2.7/32", None, None, False),
        ("SUB-1", "s2#Delegated-IPv6-Prefix", "2001:db8:5::/56", None, None, True),
    ]
    counters = radius.stop()
    assert counters == {
        "received": 6, "answered": 6, "stored": 4, "refused": 0, "ignored": 2, "duplicate": 0,
        "bad_authenticator": 0, "unknown_client": 0, "malformed": 0, "failed": 0,
    }  # fmt: skip
    assert "counters: received=" in radius.log.read_text().split("stopped;")[0]  # periodic
    with make_session_factory(radius.engine)() as session:
        reports = session.scalars(
            select(AuditLogRow).where(AuditLogRow.action == "report_bindings")
        ).all()
    assert {r.actor for r in reports} == {"radius:127.0.0.1"}
    assert sum(r.after["events"] for r in reports) == 4


def test_wrong_secret_unknown_client_and_retransmissions(radius: Radius) -> None:
    radius.register_client()
    radius.start()
    sub2 = (
        'Acct-Status-Type = Start, User-Name = "SUB-2", Acct-Session-Id = "r1", '
        "Framed-IP-Address = 192.0.2.20"
    )
    wrong = radius.radclient(sub2, secret="not-the-secret", timeout=1)
    assert wrong.returncode != 0 and _answered(wrong) == 0 and "No reply" in wrong.stdout
    assert radius.bindings() == []

    # A registered client's packet from an address that is not one: dropped, no answer.
    packet = AcctPacket(
        secret=SECRET.encode(), dict=load_dictionary([]), Acct_Status_Type="Start",
        User_Name="SUB-1", Acct_Session_Id="r7", Framed_IP_Address="192.0.2.21",
    )  # fmt: skip
    raw = packet.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))
        stranger.settimeout(1.0)
        stranger.sendto(raw, ("127.0.0.1", radius.port))
        with pytest.raises(TimeoutError):
            stranger.recvfrom(4096)
    assert radius.bindings() == []

    # radclient sends the request twice (new identifiers): both answered, one binding.
    twice = radius.radclient(sub2, count=2)
    assert twice.returncode == 0 and _answered(twice) == 2, twice.stdout
    # The very same datagram again (a NAS retransmission): the cached answer, stored once.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas:
        nas.bind(("127.0.0.1", 0))
        nas.settimeout(10.0)
        nas.sendto(raw, ("127.0.0.1", radius.port))
        first, _ = nas.recvfrom(4096)
        nas.sendto(raw, ("127.0.0.1", radius.port))
        again, _ = nas.recvfrom(4096)
    assert first == again and first[0] == 5 and first[1] == raw[1]  # Accounting-Response, id
    assert radius.bindings() == [
        ("SUB-2", "r1", "192.0.2.20/32", None, None, True),
        ("SUB-1", "r7", "192.0.2.21/32", None, None, True),
    ]
    counters = radius.stop()
    assert counters == {
        "received": _sent(wrong) + 1 + 2 + 2, "answered": 3, "stored": 3, "refused": 0,
        "ignored": 0, "duplicate": 1, "bad_authenticator": _sent(wrong), "unknown_client": 1,
        "malformed": 0, "failed": 0,
    }  # fmt: skip
    log = radius.log.read_text()
    assert "does not verify with the client's shared secret" in log
    assert "127.0.0.2: not a registered RADIUS client" in log


def test_cgnat_port_blocks_from_the_vendor_attribute_and_class(radius: Radius) -> None:
    radius.register_client()
    # Re-running for the same address updates the client: the subscriber id now comes from
    # Class, the port block from the shipped vendor attribute.
    radius.register_client(
        "--subscriber-attribute", "Class", "--ports-attribute", "VPNReg-Port-Range"
    )
    radius.start()
    acc42 = "0x" + b"ACC-42".hex()
    acc43 = "0x" + b"ACC-43".hex()
    first = radius.radclient(
        f'Acct-Status-Type = Start, Class = {acc42}, User-Name = "line-1@bng", '
        'Acct-Session-Id = "c1", Framed-IP-Address = 100.64.0.5, '
        'VPNReg-Port-Range = "203.0.113.7 1024-2047"'
    )
    assert first.returncode == 0 and _answered(first) == 1
    overlapping = radius.radclient(
        f'Acct-Status-Type = Start, Class = {acc43}, User-Name = "line-2@bng", '
        'Acct-Session-Id = "c2", Framed-IP-Address = 203.0.113.7, '
        'VPNReg-Port-Range = "2000-3071"'
    )
    # Refused by the overlap rule, yet answered: the NAS must not retransmit it for ever.
    assert overlapping.returncode == 0 and _answered(overlapping) == 1
    beside = radius.radclient(
        f'Acct-Status-Type = Start, Class = {acc43}, User-Name = "line-2@bng", '
        'Acct-Session-Id = "c3", Framed-IP-Address = 203.0.113.7, '
        'VPNReg-Port-Range = "2048-3071"'
    )
    assert beside.returncode == 0 and _answered(beside) == 1
    assert radius.bindings() == [
        ("ACC-42", "c1", "203.0.113.7/32", 1024, 2047, True),
        ("ACC-43", "c3", "203.0.113.7/32", 2048, 3071, True),
    ]
    assert radius.lookup("203.0.113.7", 1500) == radius.registrations["ACC-42"]
    assert radius.lookup("203.0.113.7", 2500) == radius.registrations["ACC-43"]
    assert radius.lookup("203.0.113.7", 4000) is None
    counters = radius.stop(signal.SIGINT)
    assert (counters["stored"], counters["refused"], counters["answered"]) == (2, 1, 3)
    assert "overlaps a live binding of another subscriber" in radius.log.read_text()
    with make_session_factory(radius.engine)() as session:
        actions = session.scalars(
            select(AuditLogRow.action).where(AuditLogRow.object_type == "radius_client")
        ).all()
    assert list(actions) == ["radius_client.create", "radius_client.update"]


def _wait_for(log: Path, needle: str) -> None:
    deadline = time.monotonic() + _PROCESS_DEADLINE_S
    while needle not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_no_answer_until_stored_and_the_retransmission_is_stored(radius: Radius) -> None:
    """A request whose binding cannot be stored is not answered (the NAS retransmits); the
    retransmission, once the database works again, is stored and answered."""
    radius.register_client()
    radius.start()
    packet = AcctPacket(
        secret=SECRET.encode(), dict=load_dictionary([]), Acct_Status_Type="Start",
        User_Name="SUB-1", Acct_Session_Id="f1", Framed_IP_Address="192.0.2.30",
    )  # fmt: skip
    raw = packet.RequestPacket()
    with radius.engine.begin() as conn:  # the table away: every write of a binding fails
        conn.execute(text("ALTER TABLE bindings RENAME TO bindings_away"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas:
        nas.bind(("127.0.0.1", 0))
        nas.sendto(raw, ("127.0.0.1", radius.port))
        _wait_for(radius.log, "not answered")
        with radius.engine.begin() as conn:
            conn.execute(text("ALTER TABLE bindings_away RENAME TO bindings"))
        nas.settimeout(0.5)
        with pytest.raises(TimeoutError):
            nas.recvfrom(4096)  # nothing was answered for the failed attempt
        nas.settimeout(_PROCESS_DEADLINE_S)
        nas.sendto(raw, ("127.0.0.1", radius.port))  # the NAS retransmits the same datagram
        answer, _ = nas.recvfrom(4096)
    assert answer[0] == 5 and answer[1] == raw[1]
    assert radius.bindings() == [("SUB-1", "f1", "192.0.2.30/32", None, None, True)]
    counters = radius.stop()
    assert (counters["failed"], counters["stored"], counters["answered"]) == (1, 1, 1)
    assert counters["duplicate"] == 0  # the failed attempt was forgotten, not cached


def test_cli_errors_are_one_line(sqlite_url: str, tmp_path: Path) -> None:
    upgrade(sqlite_url)
    server = Radius(sqlite_url, tmp_path, make_engine(sqlite_url), {})
    try:
        assert server.cli("isps", "create", "--name", "Nayatel").returncode == 0
        (tmp_path / "empty").write_text("\n")
        (tmp_path / "secret").write_text(SECRET + "\n")
        cases = [
            (["--secret-file", str(tmp_path / "missing")], "No such file"),
            (["--secret-file", str(tmp_path / "empty")], "is empty"),
            (["--secret-file", str(tmp_path / "secret"), "--ports-attribute", "Nope"],
             "not in the RADIUS dictionary"),
        ]  # fmt: skip
        for options, message in cases:
            done = server.cli(
                "isps", "radius-client", "Nayatel", "--address", "127.0.0.1", *options
            )
            assert done.returncode == 1 and message in done.stderr, done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
        unknown = server.cli(
            "isps", "radius-client", "Nobody", "--address", "127.0.0.1",
            "--secret-file", str(tmp_path / "secret"),
        )  # fmt: skip
        assert unknown.returncode == 1 and "no ISP named 'Nobody'" in unknown.stderr
        bad_listen = server.cli("radius", "--listen", "localhost")
        assert bad_listen.returncode == 2 and "HOST:PORT" in bad_listen.stderr
        assert server.bindings() == []
        with make_session_factory(server.engine)() as session:
            assert session.scalars(select(AuditLogRow.action)).all() == ["create_isp"]
    finally:
        server.engine.dispose()
