"""Rewrite the golden classification of the nDPI corpus (review the diff before committing).

Run: .venv/bin/python -m tests.golden.regen   (or scripts/regen-golden)
"""

from __future__ import annotations

from tests.golden.corpus import GOLDEN, classify_corpus, dump


def main() -> int:
    rows = classify_corpus()
    GOLDEN.write_text(dump(rows))
    vpn = sum(1 for r in rows if r["vpn"])
    print(f"wrote {GOLDEN} ({len(rows)} flows, {vpn} VPN)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
