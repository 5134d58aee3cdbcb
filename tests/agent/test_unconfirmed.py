"""Issue 16 items 2 and 4: a VPN label without the protocol's two-sided evidence never blocks.

Synthetic captures through the real meter (NFStream + the plugin), the classifier and the gateway
pipeline with an enforcing back end (the dry-run back end records what nftables would get):
a UDP echo service reflecting an OpenVPN client hard reset, WireGuard and IKE messages is passed
and recorded as `unconfirmed`; the real two-sided handshakes are blocked. A TLS flow and a DTLS
flow on one address and port are blocked only with an SSL VPN's DTLS ClientHello.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.pcapbuild import pcap, tcp, udp
from tests.agent_gateway.feeds import Signer, entry
from vpnreg.agent.config import EnforceKind
from vpnreg.agent.enforce import DryRunBackend
from vpnreg.agent.flows import FlowRecord, iter_flows
from vpnreg.agent.gateway import Gateway
from vpnreg.agent.verdictlog import VerdictLog
from vpnreg.clock import FrozenClock
from vpnreg.core.classify import Confidence, FlowContext, FlowFeatures, classify
from vpnreg.core.protocols import VpnProtocol

C, S = "198.51.100.2", "203.0.113.2"
HOME = "198.51.100.0/24"
T0 = 1_700_000_000.0
Frames = list[tuple[float, bytes]]

RANDOM_SID = bytes.fromhex("39fded2daa10a437")
ZERO_SID = bytes(8)
SERVER_SID = bytes.fromhex("9421917de7267729")


def ovpn_client_reset(sid: bytes) -> bytes:
    """P_CONTROL_HARD_RESET_CLIENT_V2, key id 0 (0x38), no acks, packet id 0."""
    return b"\x38" + sid + b"\x00" + bytes(4)


def ovpn_server_reset(sid: bytes, acked: bytes) -> bytes:
    """P_CONTROL_HARD_RESET_SERVER_V2 (0x40) acknowledging packet 0 of session `acked`."""
    return b"\x40" + sid + b"\x01" + bytes(4) + acked + bytes(4)


def ovpn_ack(sid: bytes, remote: bytes) -> bytes:
    return b"\x28" + sid + b"\x01" + bytes(4) + remote


def exchange(packets: list[tuple[int, bytes]], sport: int, dport: int) -> Frames:
    """UDP datagrams, direction 0 from C:sport to S:dport, 1 the other way, 10 ms apart."""
    frames = []
    for i, (direction, body) in enumerate(packets):
        ends = (C, sport, S, dport) if direction == 0 else (S, dport, C, sport)
        frames.append((T0 + i * 0.01, udp(ends[0], ends[1], ends[2], ends[3], body)))
    return frames


def echoed(bodies: list[bytes], sport: int, dport: int) -> Frames:
    """What a UDP echo service makes of these datagrams: each one, then its reflection."""
    return exchange([(d, b) for b in bodies for d in (0, 1)], sport, dport)


class Run:
    def __init__(self, tmp_path: Path, clock: FrozenClock) -> None:
        self.tmp = tmp_path
        self.backend = DryRunBackend(clock)
        self.log = VerdictLog(tmp_path / "verdicts.jsonl", clock=clock)
        self.gateway = Gateway(
            backend=self.backend, enforce=EnforceKind.NFTABLES,
            home=(ipaddress.ip_network(HOME),), clock=clock, source="synthetic",
            verdicts=self.log,
        )  # fmt: skip
        self.gateway.start()
        # an enforcing signed feed registering another prefix only
        signer = Signer(tmp_path)
        created = clock.now() - dt.timedelta(minutes=1)
        state = signer.state(
            signer.snapshot([entry("192.0.2.0/24", 1)], serial=1, created=created), clock.now()
        )
        self.gateway.update_feed(state, state.mode)
        self.records: list[FlowRecord] = []

    def feed(self, frames: Frames, name: str = "synthetic.pcap") -> None:
        path = self.tmp / name
        path.write_bytes(pcap(sorted(frames, key=lambda f: f[0])))
        for record in iter_flows(path):
            self.records.append(record)
            self.gateway.handle(record)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.log.path.read_text().splitlines()]

    def blocks(self) -> int:
        return len(self.backend.active_blocks())


@pytest.fixture
def run(tmp_path: Path, clock: FrozenClock) -> Iterator[Run]:
    r = Run(tmp_path, clock)
    yield r
    r.log.close()


def random_port() -> int:
    return 20000 + int.from_bytes(os.urandom(2), "big") % 40000


# --- OpenVPN --------------------------------------------------------------------------------


@pytest.mark.parametrize("sid", [RANDOM_SID, ZERO_SID], ids=["random-sid", "zero-sid"])
@pytest.mark.parametrize("port", [1194, None], ids=["port-1194", "random-port"])
def test_echo_of_an_openvpn_client_reset_is_unconfirmed_not_blocked(
    run: Run, sid: bytes, port: int | None
) -> None:
    dport = port or random_port()
    run.feed(echoed([ovpn_client_reset(sid), ovpn_client_reset(sid)], 41000, dport))
    assert run.records
    for record in run.records:
        assert not record.features.openvpn_handshake
        verdict = classify(record.features)
        assert not verdict.vpn
    assert run.blocks() == 0
    lines = run.lines()
    # nDPI calls the reflection OpenVPN by DPI: recorded as unconfirmed, passed
    assert [
        (x["application"], x["classification_rule"], x["verdict"], x["action"]) for x in lines
    ] == [("OpenVPN", "ndpi-unconfirmed", "unconfirmed", "pass")]
    assert lines[0]["vpn"] is False and "openvpn" in str(lines[0]["basis"])


def test_echo_of_a_crafted_openvpn_client_and_server_reset_is_not_a_handshake(run: Run) -> None:
    # a prober sends both resets (the server one acknowledging its own session): the echo sends
    # back a server reset, but with a session id the prober sent itself
    bodies = [ovpn_client_reset(RANDOM_SID), ovpn_server_reset(SERVER_SID, RANDOM_SID)]
    run.feed(echoed(bodies, 41001, 1194))
    assert [r.features.openvpn_handshake for r in run.records] == [False]
    assert run.blocks() == 0


@pytest.mark.parametrize("port", [1194, 443, None], ids=["port-1194", "port-443", "random-port"])
def test_real_openvpn_handshake_is_blocked(run: Run, port: int | None) -> None:
    packets = [
        (0, ovpn_client_reset(RANDOM_SID)),
        (1, ovpn_server_reset(SERVER_SID, RANDOM_SID)),
        (0, ovpn_ack(RANDOM_SID, SERVER_SID)),
    ]
    run.feed(exchange(packets, 41002, port or random_port()))
    [record] = run.records
    assert record.features.openvpn_handshake
    [line] = run.lines()
    assert (line["classification_rule"], line["verdict"], line["action"]) == (
        "openvpn-reset", "unregistered", "block",
    )  # fmt: skip
    assert run.blocks() == 1


def test_openvpn_server_reset_acking_another_session_is_not_a_handshake(run: Run) -> None:
    packets = [
        (0, ovpn_client_reset(RANDOM_SID)),
        (1, ovpn_server_reset(SERVER_SID, bytes.fromhex("0102030405060708"))),
    ]
    run.feed(exchange(packets, 41003, 1194))
    assert not any(r.features.openvpn_handshake for r in run.records)
    assert run.blocks() == 0


def test_openvpn_handshake_over_tcp_is_blocked(run: Run) -> None:
    client = ovpn_client_reset(RANDOM_SID)
    server = ovpn_server_reset(SERVER_SID, RANDOM_SID)
    frames = [
        (T0, tcp(C, 41004, S, 1194, len(client).to_bytes(2, "big") + client)),
        (T0 + 0.01, tcp(S, 1194, C, 41004, len(server).to_bytes(2, "big") + server)),
    ]
    run.feed(frames)
    assert [r.features.openvpn_handshake for r in run.records] == [True]
    assert run.blocks() == 1


# --- WireGuard --------------------------------------------------------------------------------


def wg_init(sender: bytes) -> bytes:
    return b"\x01\x00\x00\x00" + sender + bytes(range(140))


def wg_resp(sender: bytes, receiver: bytes) -> bytes:
    return b"\x02\x00\x00\x00" + sender + receiver + bytes(range(80))


def test_echo_of_a_wireguard_initiation_is_not_blocked(run: Run) -> None:
    run.feed(echoed([wg_init(b"\x11\x22\x33\x44")], 41010, 51820))
    assert not any(r.features.wireguard_handshake for r in run.records)
    assert not any(r.features.wireguard_answered for r in run.records)
    assert run.blocks() == 0
    assert all(x["verdict"] == "unconfirmed" for x in run.lines())


def test_echo_of_crafted_wireguard_initiation_and_response_is_not_blocked(run: Run) -> None:
    bodies = [wg_init(b"\x11\x22\x33\x44"), wg_resp(b"\x55\x66\x77\x88", b"\x11\x22\x33\x44")]
    run.feed(echoed(bodies, 41011, 51820))
    assert not any(r.features.wireguard_handshake for r in run.records)
    assert run.blocks() == 0


def test_echo_of_wireguard_transport_messages_is_not_blocked(run: Run) -> None:
    data = [
        b"\x04\x00\x00\x00\xaa\xbb\xcc\xdd" + i.to_bytes(8, "little") + bytes(32) for i in range(3)
    ]
    run.feed(echoed(data, 41012, 51820))
    assert not any(r.features.wireguard_handshake for r in run.records)
    assert run.blocks() == 0


def test_wireguard_response_must_name_the_initiator(run: Run) -> None:
    packets = [
        (0, wg_init(b"\x11\x22\x33\x44")),
        (1, wg_resp(b"\x55\x66\x77\x88", b"\x99\x99\x99\x99")),
    ]
    run.feed(exchange(packets, 41013, 51820))
    assert not any(r.features.wireguard_handshake for r in run.records)
    assert run.blocks() == 0


def test_real_wireguard_handshake_is_blocked(run: Run) -> None:
    packets = [
        (0, wg_init(b"\x11\x22\x33\x44")),
        (1, wg_resp(b"\x55\x66\x77\x88", b"\x11\x22\x33\x44")),
    ]
    run.feed(exchange(packets, 41014, 51820))
    assert [r.features.wireguard_handshake for r in run.records] == [True]
    assert [x["classification_rule"] for x in run.lines()] == ["wireguard-msg"]
    assert run.blocks() == 1


# --- IKE ------------------------------------------------------------------------------------------


def ike(ispi: bytes, rspi: bytes, flags: int, body: bytes = bytes(20)) -> bytes:
    length = 28 + len(body)
    return ispi + rspi + struct.pack("!BBBBII", 33, 0x20, 34, flags, 0, length) + body


def test_echo_of_an_ike_sa_init_is_not_blocked(run: Run) -> None:
    run.feed(echoed([ike(b"\x01" * 8, bytes(8), 0x08)], 41020, 500))
    assert not any(r.features.ike_header for r in run.records)
    assert run.blocks() == 0


def test_real_ike_sa_init_exchange_is_blocked(run: Run) -> None:
    packets = [(0, ike(b"\x01" * 8, bytes(8), 0x08)), (1, ike(b"\x01" * 8, b"\x02" * 8, 0x20))]
    run.feed(exchange(packets, 41021, 500))
    assert [r.features.ike_header for r in run.records] == [True]
    assert run.blocks() == 1


# --- SSL VPN pair (item 4) ---------------------------------------------------------------------


def client_hello_tls() -> bytes:
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + b"\x00\x00"
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def client_hello_dtls(
    *, version: bytes = b"\xfe\xfd", session: bytes = b"", suites: tuple[int, ...] = (0xC02B,),
    srtp: bool = False,
) -> bytes:  # fmt: skip
    exts = b"\x00\x0e\x00\x05\x00\x02\x00\x01\x00" if srtp else b""
    body = version + bytes(range(32)) + bytes([len(session)]) + session + b"\x00"
    body += (2 * len(suites)).to_bytes(2, "big") + b"".join(s.to_bytes(2, "big") for s in suites)
    body += b"\x01\x00" + len(exts).to_bytes(2, "big") + exts
    n = len(body).to_bytes(3, "big")
    hs = b"\x01" + n + b"\x00\x00" + b"\x00\x00\x00" + n + body
    return b"\x16" + version + bytes(8) + len(hs).to_bytes(2, "big") + hs


def ssl_pair(dtls_hello: bytes, port: int) -> Frames:
    hello = client_hello_tls()
    return [
        (T0, tcp(C, 42000, S, port, hello)),
        (T0 + 0.01, tcp(S, port, C, 42000, b"\x16\x03\x03\x00\x04\x02\x00\x00\x00")),
        (T0 + 1.0, udp(C, 42001, S, port, dtls_hello)),
        (T0 + 1.01, udp(S, port, C, 42001, dtls_hello[:13] + b"\x03" + dtls_hello[14:40])),
    ]


@pytest.mark.parametrize(
    "hello",
    [
        pytest.param(client_hello_dtls(), id="dtls-1.2-plain"),
        pytest.param(client_hello_dtls(srtp=True), id="webrtc-dtls-srtp"),
        pytest.param(client_hello_dtls(session=bytes(range(32)), srtp=True), id="resumed-but-srtp"),
    ],
)
def test_tls_and_dtls_on_one_port_without_ssl_vpn_marks_are_unconfirmed(
    run: Run, hello: bytes
) -> None:
    run.feed(ssl_pair(hello, 443))
    assert not any(r.features.dtls_vpn_hello for r in run.records)
    assert run.blocks() == 0
    unconfirmed = [x for x in run.lines() if x["verdict"] == "unconfirmed"]
    assert [x["classification_rule"] for x in unconfirmed] == ["ssl-pair-unconfirmed"]


@pytest.mark.parametrize(
    "hello",
    [
        pytest.param(
            client_hello_dtls(version=b"\x01\x00", session=bytes(range(32))), id="cisco-0x0100"
        ),
        pytest.param(client_hello_dtls(session=bytes(range(32))), id="resumed-session"),
        pytest.param(client_hello_dtls(suites=(0x00A8, 0x00A9, 0x00FF)), id="psk-negotiate"),
    ],
)
@pytest.mark.parametrize("port", [443, 8443])
def test_tls_and_dtls_pair_with_ssl_vpn_marks_is_blocked(run: Run, hello: bytes, port: int) -> None:
    run.feed(ssl_pair(hello, port))
    assert any(r.features.dtls_vpn_hello for r in run.records)
    blocked = [x for x in run.lines() if x["action"] == "block"]
    assert [(x["ip_protocol"], x["classification_rule"]) for x in blocked] == [(17, "ssl-vpn-pair")]
    assert run.blocks() == 1


def test_context_remembers_the_mark_for_a_later_tls_flow() -> None:
    records_ctx = FlowContext()
    dtls = FlowFeatures(
        ip_version=4, src_ip=C, src_port=1, dst_ip=S, dst_port=443, protocol=17,
        application_name="DTLS", confidence=Confidence.DPI, dtls_vpn_hello=True,
    )  # fmt: skip
    records_ctx.observe(dtls, classify(dtls, records_ctx))
    tls = FlowFeatures(
        ip_version=4, src_ip=C, src_port=2, dst_ip=S, dst_port=443, protocol=6,
        application_name="TLS", confidence=Confidence.DPI,
    )  # fmt: skip
    verdict = classify(tls, records_ctx)
    assert (verdict.vpn_protocol, verdict.rule) == (VpnProtocol.OTHER_VPN, "ssl-vpn-pair")
    unmarked = FlowContext()
    plain = FlowFeatures(**{**dtls.__dict__, "dtls_vpn_hello": False})
    unmarked.observe(plain, classify(plain, unmarked))
    later = classify(tls, unmarked)
    assert (later.vpn, later.suspected, later.rule) == (
        False, VpnProtocol.OTHER_VPN, "ssl-pair-unconfirmed",
    )  # fmt: skip
