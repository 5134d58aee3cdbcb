"""Feed key files: generation, permissions, formats, and the development key."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vpnreg.agent.feedclient import load_public_keys
from vpnreg.core.feed import key_id
from vpnreg.feedkeys import (
    FeedKeyError,
    ensure_dev_key,
    generate_keypair,
    load_private_key,
    load_public_key,
)


def test_generate_keypair_creates_the_directory_and_both_files(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    kid = generate_keypair(directory)
    private = directory / "feed.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_private_key(private)
    assert key_id(key.public_key()) == kid
    assert key_id(load_public_key(directory / "feed.pub")) == kid
    assert load_public_keys([directory / "feed.pub"]).keys() == {kid}


def test_generate_keypair_never_overwrites(tmp_path: Path) -> None:
    generate_keypair(tmp_path)
    before = (tmp_path / "feed.key").read_bytes()
    with pytest.raises(FeedKeyError, match="refusing to overwrite"):
        generate_keypair(tmp_path)
    assert (tmp_path / "feed.key").read_bytes() == before


def test_key_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        generate_keypair(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "feed.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(lambda p: None, "does not exist", id="missing"),
        pytest.param(lambda p: p.write_bytes(b"hello"), "not an unencrypted PEM", id="garbage"),
        pytest.param(
            lambda p: p.write_bytes((p.parent / "feed.pub").read_bytes()),
            "not an unencrypted PEM",
            id="public-key-in-its-place",
        ),
    ],
)
def test_bad_private_keys_are_refused(tmp_path: Path, setup: object, message: str) -> None:
    generate_keypair(tmp_path)
    path = tmp_path / "feed.key"
    path.unlink()
    assert callable(setup)
    setup(path)
    if path.exists():
        path.chmod(0o600)
    with pytest.raises(FeedKeyError, match=message):
        load_private_key(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_private_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    generate_keypair(tmp_path)
    path = tmp_path / "feed.key"
    path.chmod(mode)
    with pytest.raises(FeedKeyError, match="chmod 600"):
        load_private_key(path)


def test_public_key_as_raw_base64(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "k.pub"
    path.write_text(base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode())
    assert key_id(load_public_key(path)) == key_id(key)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"not base64 !!", "neither PEM nor base64", id="garbage"),
        pytest.param(base64.b64encode(b"x" * 31), "31 bytes", id="short"),
        pytest.param(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM",
                     id="bad-pem"),
    ],
)  # fmt: skip
def test_bad_public_keys_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k.pub"
    path.write_bytes(content)
    with pytest.raises(FeedKeyError, match=message):
        load_public_key(path)


def test_missing_public_key(tmp_path: Path) -> None:
    with pytest.raises(FeedKeyError, match="does not exist"):
        load_public_keys([tmp_path / "none.pub"])


def test_ensure_dev_key_creates_once_then_loads(tmp_path: Path) -> None:
    path = tmp_path / "var" / "feed.key"
    first = ensure_dev_key(path)
    assert (tmp_path / "var" / "feed.pub").exists()
    second = ensure_dev_key(path)
    assert key_id(first.public_key()) == key_id(second.public_key())
    assert key_id(load_public_key(tmp_path / "var" / "feed.pub")) == key_id(first.public_key())


def test_ensure_dev_key_refuses_a_public_key_without_its_private_key(tmp_path: Path) -> None:
    (tmp_path / "feed.pub").write_text("stale")
    with pytest.raises(FeedKeyError, match="exists without"):
        ensure_dev_key(tmp_path / "feed.key")
    assert not (tmp_path / "feed.key").exists()
