"""Fresh captures of real VPN software and of ordinary traffic, made in the test lab's namespaces.

Each scenario gets a lab of its own (tests.lab.netlab: namespaces A -- GW -- B), so that a capture
holds only that scenario's packets and every VPN starts from nothing (its handshake is in the
capture) unless the scenario says otherwise. tcpdump runs in GW on the interface toward A.
Every address is a documentation or private one and nothing leaves the namespaces. Only processes
started here are ever signalled (by their Popen handles, through the lab).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from tests.lab.netlab import A_IP, B_IP, Lab, LabError, Tunnel, wait_until

#: Ports probed by the port-scan negative: OpenVPN, WireGuard, IKE, IKE NAT-T, PPTP.
SCAN_PORTS = (1194, 51820, 500, 4500, 1723)
SCAN_SEED = 11
TLS_PORT = 8443
DNS_PORT = 53
BULK_PORT = 9000
BULK_BYTES = 20 * 2**20
SSH_PORT = 22
OC_PORT = 443
PSK = "vpnreg-lab-ikev2-psk-not-secret"


class Role(StrEnum):
    VPN = "vpn"  # a VPN capture, counted in recall
    APART = "apart"  # a VPN capture reported apart (OpenVPN static key: no protocol header)
    NOT_VPN = "not-vpn"  # ordinary traffic, counted in precision


@dataclass(frozen=True)
class Scenario:
    name: str
    protocol: str  # the VpnProtocol value the capture holds; "none" for ordinary traffic
    role: Role
    needs: tuple[str, ...]
    #: Runs before tcpdump starts (servers, or a tunnel for a mid-session capture).
    prepare: Callable[[Lab], None]
    #: Makes the captured traffic; returns a short note of what it did.
    traffic: Callable[[Lab], str]


@dataclass(frozen=True)
class Made:
    scenario: Scenario
    path: Path | None  # None when the scenario could not be captured
    note: str
    packets: int = 0
    problems: tuple[str, ...] = field(default=())


# --- helpers -----------------------------------------------------------------------------------


def _python() -> str:
    return sys.executable if Path(sys.executable).exists() else (shutil.which("python3") or "")


def _ping(lab: Lab, address: str, count: int = 5) -> str:
    if not lab.ping(lab.ns_a, address, count=count):
        raise LabError(f"no answer to ping {address}")
    return f"{count} pings to {address}"


def _listening(lab: Lab, ns: str, kind: str, port: int, within_s: float = 5) -> None:
    flag = "-Hltn" if kind == "tcp" else "-Hlun"
    ok = wait_until(
        lambda: bool(lab.inside(ns, "ss", flag, f"sport = :{port}", check=False).stdout.strip()),
        within_s,
    )
    if not ok:
        raise LabError(f"nothing listens on {kind}/{port} in {ns}: " + _tails(lab))


def _tails(lab: Lab) -> str:
    return " / ".join(f"{d.name}: {d.tail(3)}" for d in lab.daemons)


def _script(lab: Lab, name: str, code: str) -> str:
    path = lab.dir / f"{name}.py"
    path.write_text(code)
    return str(path)


def _client(lab: Lab, name: str, code: str, *args: str, timeout: float = 20) -> str:
    done = lab.inside(
        lab.ns_a, _python(), _script(lab, name, code), *args, check=False, timeout=timeout
    )
    if done.returncode != 0:
        raise LabError(f"{name} client failed: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


def _self_signed(lab: Lab, name: str, cn: str) -> tuple[Path, Path]:
    crt, key = lab.dir / f"{name}.crt", lab.dir / f"{name}.key"
    lab.run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
            "-keyout", str(key), "-out", str(crt))  # fmt: skip
    return crt, key


# --- VPN scenarios -----------------------------------------------------------------------------


def _nothing(lab: Lab) -> None:
    del lab


def _wireguard(lab: Lab) -> str:
    tunnel = lab.wireguard_up()
    if not lab.tunnel_works(tunnel):
        raise LabError("wireguard tunnel did not come up: " + _tails(lab))
    return "wireguard-go handshake, then " + _ping(lab, tunnel.b_inner)


def _wireguard_prepare(lab: Lab) -> None:
    tunnel = lab.wireguard_up()
    if not lab.tunnel_works(tunnel):
        raise LabError("wireguard tunnel did not come up: " + _tails(lab))


def _wireguard_mid(lab: Lab) -> str:
    return "tunnel up before the capture (no handshake in it), " + _ping(lab, "10.99.0.2")


def _openvpn_tls(proto: str) -> Callable[[Lab], str]:
    def traffic(lab: Lab) -> str:
        tunnel: Tunnel = lab.openvpn_up(proto)
        if not lab.tunnel_works(tunnel):
            raise LabError(f"openvpn {proto} tunnel did not come up: " + _tails(lab))
        return f"openvpn TLS mode over {proto.upper()}, " + _ping(lab, tunnel.b_inner)

    return traffic


def _openvpn_prepare(proto: str) -> Callable[[Lab], None]:
    def prepare(lab: Lab) -> None:
        tunnel = lab.openvpn_up(proto)
        if not lab.tunnel_works(tunnel):
            raise LabError(f"openvpn {proto} tunnel did not come up: " + _tails(lab))

    return prepare


def _openvpn_mid(proto: str) -> Callable[[Lab], str]:
    inner = {"udp": "10.98.0.2", "tcp": "10.97.0.2"}[proto]

    def traffic(lab: Lab) -> str:
        return "tunnel up before the capture (no handshake in it), " + _ping(lab, inner)

    return traffic


def _openvpn_static(proto: str) -> Callable[[Lab], str]:
    def traffic(lab: Lab) -> str:
        key = lab.dir / "static.key"
        lab.run("openvpn", "--genkey", "secret", str(key))
        key.chmod(0o600)
        dev = f"ovs{proto[0]}{lab.tag}"
        common = ["openvpn", "--dev", dev, "--dev-type", "tun", "--ping", "1", "--verb", "3",
                  "--cipher", "AES-256-CBC"]  # fmt: skip
        server = lab.spawn(
            "ovpn-static-b", lab.ns_b,
            [*common, "--proto", "udp" if proto == "udp" else "tcp-server", "--lport", "1194",
             "--ifconfig", "10.96.0.2", "10.96.0.1", "--secret", str(key), "1"],
        )  # fmt: skip
        ready = ("UDPv4 link local", "Listening for incoming TCP")
        if not wait_until(lambda: any(r in server.tail(50) for r in ready), 5):
            raise LabError(f"openvpn static server not ready: {server.tail()}")
        lab.spawn(
            "ovpn-static-a", lab.ns_a,
            [*common, "--proto", "udp" if proto == "udp" else "tcp-client",
             "--remote", B_IP, "1194", "--nobind", "--connect-retry", "1", "1",
             "--ifconfig", "10.96.0.1", "10.96.0.2", "--secret", str(key), "0"],
        )  # fmt: skip
        tunnel = Tunnel(f"openvpn-static-{proto}", "10.96.0.1", "10.96.0.2", 17, 1194)
        if not lab.tunnel_works(tunnel):
            raise LabError(f"openvpn static {proto} did not come up: " + _tails(lab))
        return f"openvpn --secret over {proto.upper()}, " + _ping(lab, "10.96.0.2")

    return traffic


_STRONGSWAN_CONF = """\
charon {{
  port = 500
  port_nat_t = 4500
  install_routes = no
  filelog {{
    stderr {{
      default = 1
      ike = 2
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{run}/charon.vici
    }}
  }}
}}
"""

_SWANCTL_CONF = """\
connections {{
  lab {{
    version = 2
    local_addrs = {me}
    remote_addrs = {peer}
    proposals = aes256-sha256-modp2048
    local {{
      auth = psk
      id = {my_id}
    }}
    remote {{
      auth = psk
      id = {peer_id}
    }}
    children {{
      lab {{
        mode = transport
        esp_proposals = aes256-sha256
      }}
    }}
  }}
}}
secrets {{
  ike-lab {{
    id-a = a.lab.example
    id-b = b.lab.example
    secret = "{psk}"
  }}
}}
"""


def _charon(lab: Lab, side: str) -> int:
    """Start charon in A or B with a private /run (its pid file and vici socket are fixed)."""
    ns = lab.ns_a if side == "a" else lab.ns_b
    conf_dir = lab.dir / f"swan-{side}"
    conf_dir.mkdir()
    (conf_dir / "strongswan.conf").write_text(_STRONGSWAN_CONF.format(run="/run"))
    me, peer = (A_IP, B_IP) if side == "a" else (B_IP, A_IP)
    (conf_dir / "swanctl.conf").write_text(
        _SWANCTL_CONF.format(
            me=me, peer=peer, psk=PSK,
            my_id=f"{side}.lab.example", peer_id=f"{'b' if side == 'a' else 'a'}.lab.example",
        )
    )  # fmt: skip
    # `ip netns exec` gives the command a mount namespace of its own (slave to the host's), so
    # the tmpfs on /run is seen by this charon only
    daemon = lab.spawn(
        f"charon-{side}", ns,
        ["sh", "-c", "mount -t tmpfs vpnreg-lab /run && exec /usr/lib/ipsec/charon"],
        env={"STRONGSWAN_CONF": str(conf_dir / "strongswan.conf")},
    )  # fmt: skip
    pid = daemon.process.pid
    vici_up = wait_until(
        lambda: lab.run("nsenter", "-t", str(pid), "-m", "test", "-S", "/run/charon.vici",
                        check=False).returncode == 0,
        5,
    )  # fmt: skip
    if not vici_up:
        raise LabError(f"charon ({side}) made no vici socket: {daemon.tail()}")
    lab.run("nsenter", "-t", str(pid), "-m", "-n", "swanctl", "--load-all", "--noprompt",
            "--file", str(conf_dir / "swanctl.conf"))  # fmt: skip
    return pid


def _ipsec(lab: Lab) -> str:
    _charon(lab, "b")
    pid_a = _charon(lab, "a")
    done = lab.run("nsenter", "-t", str(pid_a), "-m", "-n", "swanctl", "--initiate",
                   "--child", "lab", "--timeout", "8", check=False, timeout=15)  # fmt: skip
    what = "IKEv2 (strongswan, PSK): IKE_SA_INIT on UDP 500, IKE_AUTH on 4500 (MOBIKE)"
    if done.returncode == 0:
        return f"{what}; ESP SA installed, " + _ping(lab, B_IP)
    if "IKE_SA lab[1] established" not in done.stdout:
        raise LabError(f"swanctl --initiate failed: {done.stdout.strip()[-300:]}")
    refused = "unable to install" in " ".join(d.tail(400) for d in lab.daemons)
    why = "the kernel refused the ESP SA" if refused else "no CHILD_SA"
    return f"{what}; IKE_SA established, {why}, so no ESP packet"


_OCSERV_CONF = """\
auth = "plain[passwd={dir}/ocpasswd]"
tcp-port = {port}
udp-port = {port}
listen-host = {host}
run-as-user = root
run-as-group = root
socket-file = {dir}/ocserv.sock
isolate-workers = false
use-occtl = false
pid-file = {dir}/ocserv.pid
server-cert = {dir}/oc.crt
server-key = {dir}/oc.key
max-clients = 4
keepalive = 32400
dpd = 90
mobile-dpd = 1800
try-mtu-discovery = false
tls-priorities = "NORMAL:%SERVER_PRECEDENCE"
auth-timeout = 240
cookie-timeout = 300
deny-roaming = false
log-level = 2
device = vpns
ipv4-network = 10.94.0.0
ipv4-netmask = 255.255.255.0
ping-leases = false
cisco-client-compat = true
dtls-legacy = true
"""

_OC_SCRIPT = """\
#!/bin/sh
# openconnect's connect script for the lab: address the tun device, touch nothing else
if [ "$reason" = connect ]; then
  ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
  ip link set "$TUNDEV" up
  ip route add 10.94.0.0/24 dev "$TUNDEV"
fi
exit 0
"""


def _ssl_vpn(lab: Lab) -> str:
    d = lab.dir / "oc"
    d.mkdir()
    crt, key = _self_signed(lab, "oc/oc", "vpn.lab.example")
    digest = lab.run("sh", "-c",
                     f"openssl x509 -in {crt} -pubkey -noout | openssl pkey -pubin -outform der"
                     " | openssl dgst -sha256 -binary | base64").stdout.strip()  # fmt: skip
    hashed = lab.run("openssl", "passwd", "-6", "-stdin", stdin="labpass\n").stdout.strip()
    (d / "ocpasswd").write_text(f"lab:*:{hashed}\n")
    (d / "ocserv.conf").write_text(_OCSERV_CONF.format(dir=d, port=OC_PORT, host=B_IP))
    script = d / "connect.sh"
    script.write_text(_OC_SCRIPT)
    script.chmod(0o755)
    del key
    lab.spawn("ocserv", lab.ns_b, ["ocserv", "-f", "-c", str(d / "ocserv.conf")])
    _listening(lab, lab.ns_b, "tcp", OC_PORT)
    password = d / "password"
    password.write_text("labpass\n")
    # a redirection, not a pipe: sh then execs openconnect itself, so the lab's child is
    # openconnect and stopping it leaves nothing behind
    client = lab.spawn(
        "openconnect", lab.ns_a,
        ["sh", "-c", f"exec openconnect --protocol=anyconnect --user lab "
         f"--passwd-on-stdin --non-inter --servercert pin-sha256:{digest} "
         f"--script {script} https://{B_IP}:{OC_PORT}/ < {password}"],
    )  # fmt: skip
    if not wait_until(lambda: "DTLS connected" in client.tail(40) or not client.alive(), 10):
        raise LabError(f"openconnect made no DTLS session: {client.tail(4)}")
    if not client.alive():
        raise LabError(f"openconnect stopped: {client.tail(4)}")
    addr = lab.inside(lab.ns_b, "ip", "-4", "-o", "addr", "show", "dev", "vpns0", check=False)
    server_inner = addr.stdout.split()[3].split("/")[0] if addr.stdout.split() else ""
    pings = _ping(lab, server_inner) if server_inner else "no ping (server tun address unknown)"
    return (
        f"openconnect (AnyConnect protocol) to ocserv: TLS on TCP {OC_PORT}, DTLS on UDP, {pings}"
    )


# --- ordinary traffic --------------------------------------------------------------------------


def _plain_ping(lab: Lab) -> str:
    return _ping(lab, B_IP, count=5)


def _http(lab: Lab) -> str:
    lab.http_server()
    for _ in range(3):
        if not lab.http_works():
            raise LabError("HTTP GET failed")
    return "3 HTTP GETs (python http.server in B, urllib in A)"


_UDP_ECHO = """\
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(4096)
    # answer like a resolver: same id, QR bit set, the question echoed back
    s.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], peer)
"""

_DNS_CLIENT = """\
import socket, struct, sys
names = ["www.example.com", "mail.example.org", "vpn.example.net", "ns1.example.com"]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for i, name in enumerate(names):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    msg = struct.pack("!HHHHHH", 0x1000 + i, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)
    s.sendto(msg, (sys.argv[1], int(sys.argv[2])))
    s.recvfrom(4096)
print(len(names))
"""


def _dns_prepare(lab: Lab) -> None:
    lab.spawn("udp-echo", lab.ns_b,
              [_python(), _script(lab, "udpecho", _UDP_ECHO), B_IP, str(DNS_PORT)])  # fmt: skip
    _listening(lab, lab.ns_b, "udp", DNS_PORT)


def _dns(lab: Lab) -> str:
    n = _client(lab, "dnsclient", _DNS_CLIENT, B_IP, str(DNS_PORT))
    return f"{n} DNS queries over UDP 53, each answered (python echo in B)"


_TLS_SERVER = """\
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    conn, _ = srv.accept()
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            body = b"lab-ok\\n" * 200
            tls.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
    except (OSError, ssl.SSLError):
        pass
"""

_TLS_CLIENT = """\
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for _ in range(3):
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname="www.lab.example") as tls:
            tls.sendall(b"GET / HTTP/1.1\\r\\nHost: www.lab.example\\r\\n\\r\\n")
            got = b""
            while len(got) < 1400:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                got += chunk
            version = tls.version()
print(version)
"""


def _tls_prepare(lab: Lab) -> None:
    crt, key = _self_signed(lab, "www", "www.lab.example")
    lab.spawn("tls-server", lab.ns_b,
              [_python(), _script(lab, "tlsserver", _TLS_SERVER), B_IP, str(TLS_PORT),
               str(crt), str(key)])  # fmt: skip
    _listening(lab, lab.ns_b, "tcp", TLS_PORT)


def _tls(lab: Lab) -> str:
    version = _client(lab, "tlsclient", _TLS_CLIENT, B_IP, str(TLS_PORT))
    return f"3 HTTPS requests ({version}, python ssl, self-signed certificate) to TCP {TLS_PORT}"


def _ssh_prepare(lab: Lab) -> None:
    d = lab.dir / "ssh"
    d.mkdir()
    lab.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host"))
    lab.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user"))
    shutil.copy(d / "user.pub", d / "authorized_keys")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    lab.spawn(
        "sshd", lab.ns_b,
        ["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-h", str(d / "host"),
         "-o", f"ListenAddress={B_IP}", "-o", f"Port={SSH_PORT}", "-o", "StrictModes=no",
         "-o", f"AuthorizedKeysFile={d}/authorized_keys", "-o", "PermitRootLogin=yes",
         "-o", "UsePAM=no", "-o", f"PidFile={d}/sshd.pid"],
    )  # fmt: skip
    _listening(lab, lab.ns_b, "tcp", SSH_PORT)


def _ssh(lab: Lab) -> str:
    d = lab.dir / "ssh"
    done = lab.inside(
        lab.ns_a, "ssh", "-F", "/dev/null", "-i", str(d / "user"), "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-p", str(SSH_PORT), f"root@{B_IP}", "head -c 200000 /dev/zero | base64 | wc -c",
        check=False, timeout=15,
    )  # fmt: skip
    if done.returncode != 0:
        raise LabError(f"ssh failed: {done.stderr.strip()[-300:]}")
    return f"one SSH session (OpenSSH, key auth) running a command, {done.stdout.strip()} bytes"


_BULK_SERVER = """\
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
block = bytes(range(256)) * 256
while True:
    conn, _ = srv.accept()
    with conn:
        want = int(conn.recv(64))
        while want > 0:
            conn.sendall(block[: min(want, len(block))])
            want -= len(block)
"""

_BULK_CLIENT = """\
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    s.sendall(sys.argv[3].encode())
    got = 0
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        got += len(chunk)
print(got)
"""


def _bulk_prepare(lab: Lab) -> None:
    server = _script(lab, "bulkserver", _BULK_SERVER)
    lab.spawn("bulk-server", lab.ns_b, [_python(), server, B_IP, str(BULK_PORT)])
    _listening(lab, lab.ns_b, "tcp", BULK_PORT)


def _bulk(lab: Lab) -> str:
    got = _client(lab, "bulkclient", _BULK_CLIENT, B_IP, str(BULK_PORT), str(BULK_BYTES))
    return f"one TCP transfer of {int(got) / 2**20:.0f} MiB (port {BULK_PORT})"


_SCAN_SINK = """\
import selectors, socket, sys
sel = selectors.DefaultSelector()
listeners = set()
for port in map(int, sys.argv[2:]):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        s.bind((sys.argv[1], port))
        if kind == socket.SOCK_STREAM:
            s.listen()
            listeners.add(s)
        sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s in listeners:
            conn, _ = s.accept()
            sel.register(conn, selectors.EVENT_READ)
            continue
        data = s.recv(4096)  # read and never answer
        if not data and s.type == socket.SOCK_STREAM:
            sel.unregister(s)
            s.close()
"""


_SCAN_CLIENT = """\
import random, socket, sys, time
rng = random.Random(int(sys.argv[2]))
sent = 0
for port in map(int, sys.argv[3:]):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        u.sendto(rng.randbytes(rng.randrange(16, 400)), (sys.argv[1], port))
        sent += 1
    u.close()
    with socket.create_connection((sys.argv[1], port), timeout=3) as t:
        for _ in range(3):
            t.sendall(rng.randbytes(rng.randrange(16, 400)))
            sent += 1
            time.sleep(0.02)
print(sent)
"""


def _scan_prepare(lab: Lab) -> None:
    ports = [str(p) for p in SCAN_PORTS]
    lab.spawn("scan-sink", lab.ns_b,
              [_python(), _script(lab, "scansink", _SCAN_SINK), B_IP, *ports])  # fmt: skip
    for port in SCAN_PORTS:
        _listening(lab, lab.ns_b, "tcp", port)


def _scan(lab: Lab) -> str:
    ports = [str(p) for p in SCAN_PORTS]
    sent = _client(lab, "scanclient", _SCAN_CLIENT, B_IP, str(SCAN_SEED), *ports)
    return (
        f"{sent} random payloads (seed {SCAN_SEED}), 3 UDP datagrams and 3 TCP segments to each "
        f"of ports {', '.join(ports)}; B reads and never answers"
    )


def _requires(*extra: str) -> tuple[str, ...]:
    return ("ip", "tcpdump", *extra)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("wireguard", "wireguard", Role.VPN, _requires("wireguard-go", "wg"),
             _nothing, _wireguard),
    Scenario("wireguard mid-session", "wireguard", Role.VPN, _requires("wireguard-go", "wg"),
             _wireguard_prepare, _wireguard_mid),
    Scenario("openvpn tls udp", "openvpn", Role.VPN, _requires("openvpn", "openssl"),
             _nothing, _openvpn_tls("udp")),
    Scenario("openvpn tls tcp", "openvpn", Role.VPN, _requires("openvpn", "openssl"),
             _nothing, _openvpn_tls("tcp")),
    Scenario("openvpn tls udp mid-session", "openvpn", Role.VPN,
             _requires("openvpn", "openssl"), _openvpn_prepare("udp"), _openvpn_mid("udp")),
    Scenario("openvpn tls tcp mid-session", "openvpn", Role.VPN,
             _requires("openvpn", "openssl"), _openvpn_prepare("tcp"), _openvpn_mid("tcp")),
    Scenario("ipsec ikev2", "ipsec", Role.VPN, _requires("swanctl", "nsenter"),
             _nothing, _ipsec),
    Scenario("openconnect ocserv", "other-vpn", Role.VPN,
             _requires("ocserv", "openconnect", "openssl"), _nothing, _ssl_vpn),
    Scenario("openvpn static-key udp", "openvpn", Role.APART, _requires("openvpn"),
             _nothing, _openvpn_static("udp")),
    Scenario("openvpn static-key tcp", "openvpn", Role.APART, _requires("openvpn"),
             _nothing, _openvpn_static("tcp")),
    Scenario("ping", "none", Role.NOT_VPN, _requires("ping"), _nothing, _plain_ping),
    Scenario("http", "none", Role.NOT_VPN, _requires(), _nothing, _http),
    Scenario("dns-like udp", "none", Role.NOT_VPN, _requires(), _dns_prepare, _dns),
    Scenario("tls", "none", Role.NOT_VPN, _requires("openssl"), _tls_prepare, _tls),
    Scenario("ssh", "none", Role.NOT_VPN, _requires("ssh", "ssh-keygen", "/usr/sbin/sshd"),
             _ssh_prepare, _ssh),
    Scenario("bulk tcp", "none", Role.NOT_VPN, _requires(), _bulk_prepare, _bulk),
    Scenario("port-scan", "none", Role.NOT_VPN, _requires(), _scan_prepare, _scan),
)  # fmt: skip


# --- capturing ---------------------------------------------------------------------------------


def _count_packets(path: Path) -> int:
    done = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    return len(done.stdout.splitlines())


def capture(scenario: Scenario, out_dir: Path, *, settle_s: float = 0.5) -> Made:
    """Run one scenario in a lab of its own with tcpdump in GW; the lab is gone on return."""
    missing = [p for p in scenario.needs if shutil.which(p) is None]
    if missing:
        return Made(scenario, None, f"not captured: {', '.join(missing)} not installed")
    path = out_dir / (scenario.name.replace(" ", "-") + ".pcap")
    lab = Lab()
    note = ""
    ok = False
    try:
        lab.up()
        scenario.prepare(lab)
        dump = lab.spawn(
            "tcpdump", lab.ns_gw,
            # immediate mode: without it libpcap holds packets in its ring buffer for up to a
            # second, and those still held when tcpdump is stopped never reach the file
            ["tcpdump", "-i", lab.if_gw_a, "-n", "-U", "--immediate-mode", "-s", "0",
             "-Z", "root", "-w", str(path)],
        )  # fmt: skip
        if not wait_until(lambda: "listening on" in dump.tail(5), 5):
            raise LabError(f"tcpdump did not start: {dump.tail()}")
        note = scenario.traffic(lab)
        time.sleep(settle_s)  # the last answers and keepalives of the scenario
        dump.stop()
        ok = True
    except (LabError, OSError, subprocess.SubprocessError, IndexError, ValueError) as exc:
        note = f"not captured: {exc}"
    finally:
        problems = tuple(lab.close())
    if not ok:
        path.unlink(missing_ok=True)
        return Made(scenario, None, note, problems=problems)
    return Made(scenario, path, note, _count_packets(path), problems)
