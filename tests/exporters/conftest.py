"""A throw-away network namespace for loading exports into the real nft and ipset."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Netns:
    """A namespace made for one test; `run` executes a command inside it."""

    name: str

    def run(self, *argv: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def nft_file(self, tmp: Path, text: str, *options: str) -> str:
        """Run `nft OPTIONS -f FILE` on `text` written to a file (as an operator would)."""
        path = tmp / f"ruleset-{uuid.uuid4().hex[:8]}.nft"
        path.write_text(text)
        return self.run("nft", *options, "-f", str(path))


@pytest.fixture
def netns() -> Iterator[Netns]:
    name = f"vpnreg-exp-{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=30)
    try:
        yield Netns(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)
