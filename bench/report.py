"""Writes one benchmark's section into docs/benchmarks.md, replacing its previous figures."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Written by `make bench` (each section by its module in `bench/`). Targets are checked here,\n"
    "never as timed assertions in tests. Each section names the date, the machine and what it was\n"
    "compared against in the same run.\n"
)


def machine() -> str:
    """One line describing where the figures were measured."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section called `name` in docs/benchmarks.md."""
    stamp = f"_Measured {dt.date.today().isoformat()} on {machine()}._"
    block = (
        f"<!-- bench:{name} -->\n## {title}\n\n{stamp}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    )
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _m: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
