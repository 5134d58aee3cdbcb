"""Legacy import: 20,000 CSV rows through the real `vpnreg import` on SQLite (target < 10 s)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import write_section

ROWS = 20_000
TARGET_S = 10.0
VPNREG = Path(sys.executable).with_name("vpnreg")


def legacy_csv(rows: int) -> str:
    """Rows spread over 500 organisations and 12 ISPs; IPv4 /24s and IPv6 /48s, no overlaps."""
    lines = ["organisation,category,isp,subscriber_id,prefix,valid_until"]
    v4 = ipaddress.ip_network("45.0.0.0/8").subnets(new_prefix=24)
    v6 = ipaddress.ip_network("2a00::/16").subnets(new_prefix=48)
    categories = ("software_house", "call_centre", "freelancer", "bank", "other")
    for i in range(rows):
        prefix = next(v6) if i % 5 == 4 else next(v4)
        org = i % 500
        lines.append(
            f"Legacy Org {org},{categories[org % len(categories)]},ISP {i % 12},"
            f"ACC-{i:06d},{prefix},2027-{1 + i % 12:02d}-28"
        )
    return "\r\n".join(lines) + "\r\n"


def _run(env: dict[str, str], cwd: str, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(VPNREG), *args], cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"VPNREG_DATABASE_URL": f"sqlite:///{tmp}/registry.db"}
        Path(tmp, "legacy.csv").write_text(legacy_csv(ROWS))
        _run(env, tmp, "db", "upgrade")
        dry = _run(env, tmp, "import", "legacy.csv", "--dry-run")
        real = _run(env, tmp, "import", "legacy.csv")
        verify = _run(env, tmp, "audit", "verify")
        startup = _run(env, tmp, "lookup", "45.0.0.1")
    verdict = "met" if real < TARGET_S else "NOT met"
    body = f"""
`vpnreg import` of {ROWS:,} rows (500 new organisations, 12 new ISPs, IPv4 /24s and IPv6 /48s)
into an empty SQLite registry, timed as a whole process (start-up included), in one run:

| step | seconds |
| --- | ---: |
| `import --dry-run` (every check, nothing written) | {dry:.2f} |
| `import` (checks, {ROWS:,} registrations, {ROWS + 512:,} audit events) | {real:.2f} |
| `audit verify` over the result | {verify:.2f} |
| a `lookup` afterwards (process start-up + one query) | {startup:.2f} |

Target: {ROWS:,} rows in under {TARGET_S:.0f} s on SQLite: **{verdict}**.
"""
    print(body)
    write_section("import", "Legacy import (registry)", body)


if __name__ == "__main__":
    main()
