"""write_atomic: the new content or the old, never a mix, and no temporary file left behind."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpnreg import files
from vpnreg.files import write_atomic


def test_bytes_and_chunks_are_written_in_order(tmp_path: Path) -> None:
    target = tmp_path / "feed.json"
    write_atomic(target, b"one")
    assert target.read_bytes() == b"one"
    inode = target.stat().st_ino
    write_atomic(target, iter([b"t", b"", b"wo"]))
    assert target.read_bytes() == b"two"
    assert target.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert os.listdir(tmp_path) == ["feed.json"]


def test_mode_is_applied_exactly(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "public", b"x")
    finally:
        os.umask(old)
    write_atomic(tmp_path / "private", b"x", mode=0o600)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600


def test_an_error_mid_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def chunks() -> Iterator[bytes]:
        yield b"half of the new"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_atomic(target, chunks())
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_rename_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_bytes(b"keep")
    with pytest.raises(IsADirectoryError):
        write_atomic(target, b"new")
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    assert (target / "inside").read_bytes() == b"keep"


def test_a_missing_directory_is_an_oserror_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "no" / "such" / "file", b"x")
    assert os.listdir(tmp_path) == []


def test_file_synced_before_the_rename_and_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the write survive a power cut: the order of fsync, rename, fsync."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: str, dst: Path) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    write_atomic(tmp_path / "x", b"data")
    assert events == ["fsync file", "rename", "fsync dir"]
