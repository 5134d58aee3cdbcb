"""Feed signing keys on disk: generating a key pair, loading private and public keys.

Shared by the server (which signs) and the gateway client (which trusts public keys). The private
key is PKCS#8 PEM, unencrypted, mode 0600; the public key is SubjectPublicKeyInfo PEM. Public keys
are also accepted as the bare base64 of the raw 32 bytes, so a key id can be pasted by hand.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from vpnreg.core.feed import key_id

PRIVATE_KEY_NAME = "feed.key"
PUBLIC_KEY_NAME = "feed.pub"
#: Bits that must be clear on a private key file: nobody but the owner may read or write it.
_NOT_OWNER = stat.S_IRWXG | stat.S_IRWXO


class FeedKeyError(Exception):
    """A key file is missing, unreadable, too widely readable or not an Ed25519 key (one line)."""


@dataclass(frozen=True)
class KeyPair:
    """Where generate_keypair wrote a key pair, and its key id."""

    key_id: str
    private_path: Path
    public_path: Path


def public_key_path(private_path: Path) -> Path:
    """The public key written beside a private key: feed.key -> feed.pub."""
    return private_path.with_suffix(".pub")


def private_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` (never wider, whatever the umask) and fail if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_keypair(private_key: Ed25519PrivateKey, private_path: Path) -> KeyPair:
    """Write a private key (0600) and its public key beside it (0644); refuses to overwrite."""
    public_path = public_key_path(private_path)
    for path in (private_path, public_path):
        if path.exists():
            raise FeedKeyError(f"{path} already exists; refusing to overwrite a feed key")
    try:
        _write_new(private_path, private_key_bytes(private_key), 0o600)
        _write_new(public_path, public_key_bytes(private_key.public_key()), 0o644)
    except OSError as exc:
        raise FeedKeyError(f"cannot write feed key {exc.filename}: {exc.strerror}") from None
    return KeyPair(key_id(private_key.public_key()), private_path, public_path)


def generate_keypair(directory: Path) -> str:
    """Create `directory` if needed, write feed.key (0600) and feed.pub; return the key id."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FeedKeyError(f"cannot create {directory}: {exc.strerror}") from None
    pair = write_keypair(Ed25519PrivateKey.generate(), directory / PRIVATE_KEY_NAME)
    return pair.key_id


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FeedKeyError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise FeedKeyError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 signing key at `path`.

    Refuses (like ssh) a file that group or others may read or write: a signing key that leaked
    would let anyone publish an allowlist every gateway trusts.
    """
    data = _read(path, "feed key")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & _NOT_OWNER:
        raise FeedKeyError(
            f"feed key {path} has mode {mode:04o}; it must be readable by its owner only "
            f"(chmod 600 {path})"
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise FeedKeyError(
            f"feed key {path} is not an unencrypted PEM private key: {exc}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FeedKeyError(f"feed key {path} is not an Ed25519 key")
    return key


def parse_public_key(data: bytes, *, origin: str) -> Ed25519PublicKey:
    """A public key from PEM or from the base64 of its raw 32 bytes."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(text)
        except (ValueError, TypeError) as exc:
            raise FeedKeyError(f"public key {origin} is not a valid PEM key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise FeedKeyError(f"public key {origin} is not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FeedKeyError(f"public key {origin} is neither PEM nor base64") from None
    if len(raw) != 32:
        raise FeedKeyError(f"public key {origin} is {len(raw)} bytes; an Ed25519 key is 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key at `path` (what `vpnreg feed keygen` writes as feed.pub)."""
    return parse_public_key(_read(path, "public key"), origin=str(path))


def ensure_dev_key(path: Path) -> Ed25519PrivateKey:
    """Development mode only: the key at `path`, generated (with its .pub) when missing."""
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FeedKeyError(f"cannot create {path.parent}: {exc.strerror}") from None
        if public_key_path(path).exists():
            # A stale public key of another key would make gateways trust the wrong one.
            raise FeedKeyError(f"{public_key_path(path)} exists without {path}; remove it first")
        key = Ed25519PrivateKey.generate()
        write_keypair(key, path)
        return key
    return load_private_key(path)


def server_signing_key(path: Path, *, production: bool) -> Ed25519PrivateKey:
    """The registry's signing key (VPNREG_FEED_KEY), for the feed and the audit checkpoints:
    loaded as it is in production; in development generated with its .pub when missing."""
    return load_private_key(path) if production else ensure_dev_key(path)
