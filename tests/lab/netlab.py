"""A network lab made by the tests: namespaces A -- GW -- B with real WireGuard and OpenVPN peers.

    A 198.51.100.2/24 ==veth== 198.51.100.1 [GW] 203.0.113.1 ==veth== 203.0.113.2/24 B
      2001:db8:a::2/64          2001:db8:a::1     2001:db8:b::1           2001:db8:b::2/64

GW forwards; A and B route everything through it, so a back end in GW sees every packet between
them. Tunnels: WireGuard (wireguard-go) 10.99.0.1 <-> 10.99.0.2 over UDP 51820; OpenVPN in TLS mode
10.98.0.1 <-> 10.98.0.2 over UDP 1194 and 10.97.0.1 <-> 10.97.0.2 over TCP 1194. Every address is a
documentation or private one and every packet stays in the namespaces made here.

Ported from the shell recipe in ../shared/lab (which the tests never call). Only processes the lab
started are ever signalled: each is a Popen child (so its PID cannot be reused before it is reaped),
started with `ip netns exec NS PROGRAM`, which execs, so the child is the daemon itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

A_IP = "198.51.100.2"
GW_IP_A = "198.51.100.1"
GW_IP_B = "203.0.113.1"
B_IP = "203.0.113.2"
A_IP6 = "2001:db8:a::2"
B_IP6 = "2001:db8:b::2"
HTTP_PORT = 8080
WG_PORT = 51820
OVPN_PORT = 1194
WG_UAPI_DIR = Path("/var/run/wireguard")

REQUIRED = ("ip", "nft", "wg", "wireguard-go", "openvpn", "openssl", "ping", "ss")

_counter = itertools.count(1)


class LabError(RuntimeError):
    pass


def missing_requirements() -> list[str]:
    """What the lab cannot work without (root and the programs); empty when all is there."""
    missing = [c for c in REQUIRED if shutil.which(c) is None]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


def wait_until(condition: Callable[[], bool], timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step_s)


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3)

    def tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass(frozen=True)
class Tunnel:
    name: str
    a_inner: str  # A's address inside the tunnel
    b_inner: str  # B's address inside the tunnel
    ip_protocol: int  # of the outer packets between A and B
    port: int  # B's port


class Lab:
    """Three namespaces and what runs in them; ``close()`` removes all of it, even on failure."""

    def __init__(self) -> None:
        n = next(_counter)
        pid = os.getpid()
        self.prefix = f"vpnreg-{pid}-{n}"
        self.ns_a, self.ns_gw, self.ns_b = (f"{self.prefix}-{s}" for s in ("a", "gw", "b"))
        # interface names have 15 characters at most; the wireguard ones must be unique host-wide
        tag = f"{pid % 1_000_000}{n}"
        self.tag = tag
        self.if_a, self.if_b = f"vra{tag}", f"vrb{tag}"
        self.if_gw_a, self.if_gw_b = f"vrga{tag}", f"vrgb{tag}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}."))
        self.daemons: list[Daemon] = []
        self.namespaces: list[str] = []
        self.sockets: list[Path] = []
        self.ipv6 = False
        self._http: Daemon | None = None

    # --- commands -----------------------------------------------------------------------------

    def run(
        self, *argv: str, check: bool = True, timeout: float = 10, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def netns_exec(self, ns: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", ns)

    def inside(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 10,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.run(*self.netns_exec(ns), *argv, check=check, timeout=timeout, stdin=stdin)

    def spawn(
        self, name: str, ns: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> Daemon:
        log = self.dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*self.netns_exec(ns), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        daemon = Daemon(name, process, log)
        self.daemons.append(daemon)
        return daemon

    # --- topology -----------------------------------------------------------------------------

    def up(self) -> Lab:
        for ns in (self.ns_a, self.ns_gw, self.ns_b):
            self.run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            self.run("ip", "-n", ns, "link", "set", "lo", "up")
            # no DAD delay and no router solicitations: addresses usable at once, links quiet
            self.inside(
                ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.router_solicitations=0", check=False,
            )  # fmt: skip
        ip = ("ip",)
        self.run(*ip, "link", "add", self.if_gw_a, "netns", self.ns_gw, "type", "veth",
                 "peer", "name", self.if_a, "netns", self.ns_a)  # fmt: skip
        self.run(*ip, "link", "add", self.if_gw_b, "netns", self.ns_gw, "type", "veth",
                 "peer", "name", self.if_b, "netns", self.ns_b)  # fmt: skip
        for ns, dev, addr in (
            (self.ns_a, self.if_a, f"{A_IP}/24"),
            (self.ns_gw, self.if_gw_a, f"{GW_IP_A}/24"),
            (self.ns_gw, self.if_gw_b, f"{GW_IP_B}/24"),
            (self.ns_b, self.if_b, f"{B_IP}/24"),
        ):
            self.run(*ip, "-n", ns, "addr", "add", addr, "dev", dev)
            self.run(*ip, "-n", ns, "link", "set", dev, "up")
        self.run(*ip, "-n", self.ns_a, "route", "add", "default", "via", GW_IP_A)
        self.run(*ip, "-n", self.ns_b, "route", "add", "default", "via", GW_IP_B)
        self.inside(self.ns_gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if not wait_until(lambda: self.ping(self.ns_a, B_IP), 5):
            raise LabError("A cannot reach B through GW")
        self.ipv6 = self._ipv6_up()
        return self

    def _ipv6_up(self) -> bool:
        # best effort, as in the recipe: a machine without IPv6 forwarding leaves the lab IPv4-only
        steps = [
            ("sysctl", self.ns_gw, ("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")),
            ("ip", self.ns_a, ("-6", "addr", "add", f"{A_IP6}/64", "dev", self.if_a, "nodad")),
            ("ip", self.ns_gw, ("-6", "addr", "add", "2001:db8:a::1/64", "dev", self.if_gw_a,
                                "nodad")),
            ("ip", self.ns_gw, ("-6", "addr", "add", "2001:db8:b::1/64", "dev", self.if_gw_b,
                                "nodad")),
            ("ip", self.ns_b, ("-6", "addr", "add", f"{B_IP6}/64", "dev", self.if_b, "nodad")),
            ("ip", self.ns_a, ("-6", "route", "add", "default", "via", "2001:db8:a::1")),
            ("ip", self.ns_b, ("-6", "route", "add", "default", "via", "2001:db8:b::1")),
        ]  # fmt: skip
        for kind, ns, args in steps:
            argv = (*self.netns_exec(ns), *args) if kind == "sysctl" else ("ip", "-n", ns, *args)
            if self.run(*argv, check=False).returncode != 0:
                return False
        return wait_until(lambda: self.ping(self.ns_a, B_IP6), 3)

    # --- checks ---------------------------------------------------------------------------------

    def ping(self, ns: str, address: str, *, count: int = 1, wait_s: float = 1) -> bool:
        """True iff at least one echo reply arrives."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-W", str(wait_s)]
        if count > 1:
            argv += ["-i", "0.2"]
        return (
            self.inside(ns, *argv, address, check=False, timeout=count + wait_s + 5).returncode == 0
        )

    def tunnel_works(self, tunnel: Tunnel, *, within_s: float = 10) -> bool:
        return wait_until(lambda: self.ping(self.ns_a, tunnel.b_inner, wait_s=0.5), within_s, 0)

    def tunnel_blocked(self, tunnel: Tunnel) -> bool:
        """True iff three pings through the tunnel over ~1.5 s all go unanswered."""
        return not self.ping(self.ns_a, tunnel.b_inner, count=3)

    def http_server(self) -> None:
        if self._http is not None and self._http.alive():
            return
        www = self.dir / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text("lab-ok\n")
        self._http = self.spawn(
            "http", self.ns_b,
            [shutil.which("python3") or "python3", "-m", "http.server", str(HTTP_PORT),
             "--bind", B_IP, "--directory", str(www)],
        )  # fmt: skip
        # wait for the listening socket, so no refused attempt ever crosses the gateway
        listening = wait_until(
            lambda: bool(
                self.inside(
                    self.ns_b, "ss", "-Hltn", f"sport = :{HTTP_PORT}", check=False
                ).stdout.strip()
            ),
            5,
        )
        if not listening:
            raise LabError(f"http.server did not start: {self._http.tail()}")

    def http_works(self) -> bool:
        self.http_server()
        # urllib with an empty ProxyHandler: a proxy in the environment must never be used
        code = (
            "import sys, urllib.request as u\n"
            "body = u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=3).read()\n"
            "sys.exit(body.strip() != b'lab-ok')\n"
        )
        python = shutil.which("python3") or "python3"
        url = f"http://{B_IP}:{HTTP_PORT}/"
        return self.inside(self.ns_a, python, "-c", code, url, check=False).returncode == 0

    def plain_traffic_works(self) -> bool:
        v6 = not self.ipv6 or self.ping(self.ns_a, B_IP6)
        return self.ping(self.ns_a, B_IP) and v6 and self.http_works()

    # --- WireGuard ------------------------------------------------------------------------------

    def wireguard_up(self) -> Tunnel:
        env = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
        # the UAPI sockets of all namespaces share one directory: each peer its own name
        ia, ib = f"wga{self.tag}", f"wgb{self.tag}"
        keys = {}
        for side in ("a", "b"):
            key = self.run("wg", "genkey").stdout.strip()
            path = self.dir / f"wg{side}.key"
            path.write_text(key + "\n")
            path.chmod(0o600)
            keys[side] = (path, self.run("wg", "pubkey", stdin=key + "\n").stdout.strip())
        for side, ns, name in (("a", self.ns_a, ia), ("b", self.ns_b, ib)):
            self.sockets.append(WG_UAPI_DIR / f"{name}.sock")
            self.spawn(f"wg{side}", ns, ["wireguard-go", "-f", name], env=env)
        if not wait_until(lambda: all(s.exists() for s in self.sockets[-2:]), 5):
            raise LabError("wireguard-go made no UAPI sockets: " + self._tails("wga", "wgb"))
        self.inside(self.ns_b, "wg", "set", ib, "private-key", str(keys["b"][0]),
                    "listen-port", str(WG_PORT), "peer", keys["a"][1],
                    "allowed-ips", "10.99.0.1/32")  # fmt: skip
        self.run("ip", "-n", self.ns_b, "addr", "add", "10.99.0.2/30", "dev", ib)
        self.run("ip", "-n", self.ns_b, "link", "set", ib, "up")
        self.run("ip", "-n", self.ns_a, "addr", "add", "10.99.0.1/30", "dev", ia)
        self.run("ip", "-n", self.ns_a, "link", "set", ia, "up")
        # persistent-keepalive: A starts the handshake at once
        self.inside(self.ns_a, "wg", "set", ia, "private-key", str(keys["a"][0]),
                    "peer", keys["b"][1], "endpoint", f"{B_IP}:{WG_PORT}",
                    "allowed-ips", "10.99.0.2/32", "persistent-keepalive", "25")  # fmt: skip
        return Tunnel("wireguard", "10.99.0.1", "10.99.0.2", 17, WG_PORT)

    # --- OpenVPN (TLS mode, a throwaway CA made here) ------------------------------------------

    def _pki(self) -> Path:
        d = self.dir / "pki"
        if (d / "client.crt").exists():
            return d
        d.mkdir()
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        self.run("openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=vpnreg-lab-ca",
                 "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))  # fmt: skip
        for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
            self.run("openssl", "req", *ec, "-subj", f"/CN={name}",
                     "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))  # fmt: skip
            ext = d / f"{name}.ext"
            ext.write_text(f"keyUsage=digitalSignature,keyAgreement\nextendedKeyUsage={usage}\n")
            self.run("openssl", "x509", "-req", "-in", str(d / f"{name}.csr"),
                     "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"), "-CAcreateserial",
                     "-days", "2", "-extfile", str(ext),
                     "-out", str(d / f"{name}.crt"))  # fmt: skip
        return d

    def openvpn_up(self, proto: str) -> Tunnel:
        """An OpenVPN TLS tunnel over ``proto`` ("udp" or "tcp"), B listening on port 1194.

        Over TCP, B runs a multi-client server (``--mode server``, as OpenVPN servers are
        deployed), which answers a new connection's reset at once; OpenVPN's point-to-point TCP
        server answers it only about 0.9 s later, and pauses 1 s after each client leaves, which
        a benchmark would count as the tunnel's own time. The client's address is fixed by a
        client-config file, so the inner addresses are the same in both modes."""
        if proto not in ("udp", "tcp"):
            raise ValueError(proto)
        d = self._pki()
        net = "10.98.0" if proto == "udp" else "10.97.0"
        dev = f"ov{proto[0]}{self.tag}"
        common = ["openvpn", "--dev", dev, "--dev-type", "tun", "--ping", "1", "--verb", "3",
                  "--data-ciphers", "AES-256-GCM", "--ca", str(d / "ca.crt")]  # fmt: skip
        if proto == "udp":
            server_mode = ["--proto", "udp", "--ifconfig", f"{net}.2", f"{net}.1"]
            client_mode = ["--proto", "udp", "--ifconfig", f"{net}.1", f"{net}.2", "--tls-client"]
        else:
            ccd = self.dir / "ccd-tcp"
            ccd.mkdir(exist_ok=True)
            (ccd / "client").write_text(f"ifconfig-push {net}.1 255.255.255.0\n")
            server_mode = ["--proto", "tcp-server", "--mode", "server", "--topology", "subnet",
                           "--ifconfig", f"{net}.2", "255.255.255.0", "--push", "topology subnet",
                           "--client-config-dir", str(ccd), "--ccd-exclusive"]  # fmt: skip
            client_mode = ["--proto", "tcp-client", "--client"]
        server = self.spawn(
            f"ovpn-{proto}-b", self.ns_b,
            [*common, *server_mode, "--lport", str(OVPN_PORT), "--tls-server", "--dh", "none",
             "--cert", str(d / "server.crt"), "--key", str(d / "server.key")],
        )  # fmt: skip
        ready = "Initialization Sequence Completed|UDPv4 link local"
        if not wait_until(lambda: _in_log(server.log, ready), 5):
            raise LabError(f"openvpn ({proto}) server not ready: {server.tail()}")
        client = self.spawn(
            f"ovpn-{proto}-a", self.ns_a,
            [*common, *client_mode, "--remote", B_IP, str(OVPN_PORT), "--nobind",
             "--connect-retry", "1", "1", "--remote-cert-tls", "server",
             "--cert", str(d / "client.crt"), "--key", str(d / "client.key")],
        )  # fmt: skip
        done = "Initialization Sequence Completed"
        if not wait_until(lambda: _in_log(client.log, done) and _in_log(server.log, done), 10):
            raise LabError(f"openvpn ({proto}) did not connect: {client.tail()} / {server.tail()}")
        return Tunnel(f"openvpn-{proto}", f"{net}.1", f"{net}.2", 17 if proto == "udp" else 6,
                      OVPN_PORT)  # fmt: skip

    # --- nftables in GW ---------------------------------------------------------------------------

    def gw_nft(self, *args: str, stdin: str | None = None) -> str:
        return self.inside(self.ns_gw, "nft", *args, stdin=stdin).stdout

    # --- teardown ---------------------------------------------------------------------------------

    def _tails(self, *names: str) -> str:
        return " / ".join(d.tail(2) for d in self.daemons if d.name in names)

    def close(self) -> list[str]:
        """Stop the lab's daemons, delete its namespaces and files; returns what could not go."""
        problems: list[str] = []
        for daemon in reversed(self.daemons):
            try:
                daemon.stop()
            except (OSError, subprocess.SubprocessError) as exc:
                problems.append(f"{daemon.name}: {exc}")
        self.daemons.clear()
        for ns in reversed(self.namespaces):
            left = self.run("ip", "netns", "pids", ns, check=False).stdout.split()
            if left:
                problems.append(f"{ns}: processes the lab did not start: {left}")
            if self.run("ip", "netns", "del", ns, check=False).returncode != 0:
                problems.append(f"could not delete namespace {ns}")
        self.namespaces.clear()
        for sock in self.sockets:
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def __enter__(self) -> Lab:
        try:
            return self.up()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_log(log: Path, pattern: str) -> bool:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return any(p in text for p in pattern.split("|"))
