"""Prefixes as the applicant gives them: typed one per row, or a CSV file, with row-level errors.

Each entry remembers where it came from ("row 2", "CSV line 5"), so a problem the registry finds
with `prefixes[i]` is reported against the row or line the applicant can find and fix.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vpnreg.registry.errors import FieldError

#: Peers may be separated by spaces, commas or semicolons.
_PEER_SPLIT = re.compile(r"[\s,;]+")
_INDEX = re.compile(r"^prefixes\[(\d+)\](.*)$")
MAX_CSV_BYTES = 256 * 1024
MAX_PREFIXES = 500


@dataclass(frozen=True)
class PrefixEntry:
    source: str
    prefix: str
    peers: tuple[str, ...]


def split_peers(text: str) -> tuple[str, ...]:
    return tuple(p for p in _PEER_SPLIT.split(text.strip()) if p)


def rows_from_form(prefixes: Sequence[str], peers: Sequence[str]) -> list[PrefixEntry]:
    """The typed rows, blank rows skipped; peers[i] belongs to prefixes[i]."""
    entries: list[PrefixEntry] = []
    for i, text in enumerate(prefixes):
        peer_text = peers[i] if i < len(peers) else ""
        if text.strip() or peer_text.strip():
            entries.append(PrefixEntry(f"row {i + 1}", text.strip(), split_peers(peer_text)))
    return entries


def rows_from_csv(data: bytes) -> tuple[list[PrefixEntry], list[FieldError]]:
    """Lines of `prefix[,peers]`; a header line naming `prefix` is skipped. Problems with the file
    itself (encoding, size, empty lines of nothing) come back as errors, one per line."""
    errors: list[FieldError] = []
    if len(data) > MAX_CSV_BYTES:
        return [], [FieldError("csv", "too_large", f"the CSV is over {MAX_CSV_BYTES} bytes")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [FieldError("csv", "encoding", "the CSV must be UTF-8 text")]
    entries: list[PrefixEntry] = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if line_no == 1 and cells[0].lower() == "prefix":
            continue
        if len(cells) > 2:
            errors.append(
                FieldError(
                    f"CSV line {line_no}",
                    "columns",
                    f"expected prefix and peers, found {len(cells)} columns",
                    ",".join(cells),
                )
            )
            continue
        peers = split_peers(cells[1]) if len(cells) == 2 else ()
        entries.append(PrefixEntry(f"CSV line {line_no}", cells[0], peers))
    if len(entries) > MAX_PREFIXES:
        errors.append(FieldError("csv", "too_many", f"at most {MAX_PREFIXES} prefixes at once"))
    return entries, errors


def located(errors: Sequence[FieldError], entries: Sequence[PrefixEntry]) -> list[FieldError]:
    """The registry's errors with `prefixes[i]` replaced by where entry i came from."""
    out: list[FieldError] = []
    for error in errors:
        match = _INDEX.match(error.field)
        if match and int(match.group(1)) < len(entries):
            entry = entries[int(match.group(1))]
            rest = match.group(2)
            where = entry.source + (f" {rest.lstrip('.')}" if rest else "")
            out.append(FieldError(where, error.code, error.message, error.value))
        else:
            out.append(error)
    return out
