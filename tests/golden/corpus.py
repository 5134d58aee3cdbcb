"""The nDPI capture corpus and its golden classification: shared by the golden test and regen."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpnreg.cli.classify import verdict_rows

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "ndpi"
GOLDEN = Path(__file__).resolve().parent / "ndpi_classification.jsonl"


@dataclass(frozen=True)
class Capture:
    file: str
    group: str
    is_vpn: bool
    notes: str


def manifest(corpus: Path = CORPUS) -> list[Capture]:
    with (corpus / "MANIFEST.tsv").open(newline="") as fh:
        return [
            Capture(
                file=row["file"],
                group=row["group"],
                is_vpn=row["is_vpn"] == "yes",
                notes=row["notes"],
            )
            for row in csv.DictReader(fh, delimiter="\t")
        ]


def classify_corpus(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    """Every flow of every capture in the manifest, in manifest then hand-over order."""
    rows: list[dict[str, Any]] = []
    for capture in manifest(corpus):
        rows.extend(verdict_rows(corpus / capture.file, label=capture.file))
    return rows


def dump(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)


def load_golden() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines() if line]
