"""Replacing a file atomically, for every part that writes one (agent, CLI, registry).

Readers see the old content or the new, never a mix, and a crash leaves one of the two: the
new content goes to a temporary file beside the target, which is fsync'd and renamed over it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o644) -> None:
    """Replace `path` with `data` (bytes, or chunks written in order), with permissions `mode`.

    The temporary file is in the target's directory because a rename is atomic only within one
    file system. It is fsync'd before the rename, and the directory after it, so that after a
    power cut the name points at complete content. On any error, including one raised by the
    chunks, the temporary file is removed and `path` is left as it was. `mode` is applied
    exactly (the umask does not narrow it): documents that must stay private pass 0o600.
    """
    stage(path, data, mode=mode).put()


class StagedFile:
    """Content written and fsync'd beside its target, not yet in place: `put` renames it over
    the target, `discard` removes it. For a file that must appear only if something else (a
    database transaction) succeeds."""

    def __init__(self, path: Path, temporary: Path) -> None:
        self.path = path
        self.temporary = temporary

    def put(self) -> None:
        try:
            os.replace(self.temporary, self.path)
        except BaseException:
            self.discard()
            raise
        _fsync_directory(self.path.parent)

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


def stage(path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o644) -> StagedFile:
    """Write `data` to a temporary file beside `path` (see write_atomic); nothing is replaced
    until the StagedFile is put."""
    chunks: Iterable[bytes] = [data] if isinstance(data, bytes) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return StagedFile(path, Path(tmp))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
