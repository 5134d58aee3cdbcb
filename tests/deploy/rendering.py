"""The files of deploy/ as an operator installs them: the placeholders docs/deployment.md names
replaced by real paths, so that nginx and systemd-analyze check them on this machine.

Every replacement made here is one the installation guide (docs/deployment.md, "Installing")
tells operators to make; the listen ports are changed too, so a test never needs ports 80 and
443. A self-signed certificate for the two host names stands in for the real one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX_CONFIG = DEPLOY / "nginx" / "vpnreg.conf"
UNITS = sorted(p for p in DEPLOY.iterdir() if p.suffix in {".service", ".timer"})
GATEWAY_EXAMPLE = DEPLOY / "gateway.example.toml"
#: Where the units expect vpnreg (a virtualenv under /opt/vpnreg, docs/deployment.md).
INSTALLED_VPNREG = "/opt/vpnreg/.venv/bin/vpnreg"
#: The host names the rendered configuration answers to: the static feed's is reached as
#: https://localhost:PORT, the registry's as https://127.0.0.1:PORT (one certificate holds both).
FEED_HOST = "localhost"
REGISTRY_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Certificate:
    chain: Path
    key: Path


def self_signed(directory: Path) -> Certificate:
    """A self-signed certificate for FEED_HOST and REGISTRY_HOST (valid a day)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vpnreg deploy test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(FEED_HOST), x509.IPAddress(ipaddress.ip_address(REGISTRY_HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    chain = directory / "fullchain.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "privkey.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Certificate(chain, key_path)


@dataclass(frozen=True)
class NginxSite:
    """deploy/nginx/vpnreg.conf rendered inside a complete nginx.conf in `prefix`."""

    prefix: Path
    main: Path
    http_port: int
    https_port: int


#: The main configuration around the included site: pid, logs and temporary files in the
#: prefix, so nginx runs as the test's process and never touches the system's nginx.
_MAIN = """\
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    default_type application/octet-stream;
    log_format deploy '$status $host $request_uri';
    access_log {prefix}/access.log deploy;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


def render_nginx(
    prefix: Path,
    *,
    certificate: Certificate,
    feed_dir: Path,
    upstream: str,
    http_port: int,
    https_port: int,
) -> NginxSite:
    """The site with the operator's replacements (docs/deployment.md) and the test's ports."""
    prefix.mkdir(parents=True, exist_ok=True)
    text = NGINX_CONFIG.read_text()
    replacements = {
        "registry.example.org": REGISTRY_HOST,
        "feed.example.org": FEED_HOST,
        "/etc/ssl/vpnreg/fullchain.pem": str(certificate.chain),
        "/etc/ssl/vpnreg/privkey.pem": str(certificate.key),
        "/srv/vpnreg-feed": str(feed_dir),
        "127.0.0.1:8000": upstream,
    }
    for placeholder, value in replacements.items():
        assert placeholder in text, f"{NGINX_CONFIG} no longer holds {placeholder}"
        text = text.replace(placeholder, value)
    text = re.sub(r"(listen (?:\[::\]:)?)80;", rf"\g<1>{http_port};", text)
    text = re.sub(r"(listen (?:\[::\]:)?)443 ", rf"\g<1>{https_port} ", text)
    site = prefix / "vpnreg.conf"
    site.write_text(text)
    main = prefix / "nginx.conf"
    main.write_text(_MAIN.format(prefix=prefix, site=site))
    return NginxSite(prefix, main, http_port, https_port)


def render_unit(unit: Path, directory: Path, vpnreg: Path) -> Path:
    """`unit` with vpnreg where this checkout installed it (the units name /opt/vpnreg)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = unit.read_text()
    rendered = directory / unit.name
    rendered.write_text(text.replace(INSTALLED_VPNREG, str(vpnreg)))
    return rendered


def unit_command_lines(unit: Path) -> list[list[str]]:
    """The vpnreg command lines of a unit's ExecStart= and ExecStartPre= (split on blanks:
    the units quote nothing)."""
    lines = []
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in {"ExecStart", "ExecStartPre", "ExecStartPost"} and INSTALLED_VPNREG in value:
            words = value.split()
            assert words[0] == INSTALLED_VPNREG, line
            lines.append(words[1:])
    return lines
