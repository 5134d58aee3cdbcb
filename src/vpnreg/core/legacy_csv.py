"""The legacy-registry CSV format: parsing its structure, with the file's line number of every row.

RFC 4180 CSV in UTF-8, CRLF or LF line ends, header exactly LEGACY_HEADER. Semantic checks
(prefixes, categories, dates, overlaps) belong to the import service; this module says which rows
the file holds and where each starts, so every later error can name the line a person would open.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

LEGACY_HEADER = ("organisation", "category", "isp", "subscriber_id", "prefix", "valid_until")


@dataclass(frozen=True)
class LegacyRow:
    """One data row; `line` is the file line it starts on (the header is line 1)."""

    line: int
    organisation: str
    category: str
    isp: str
    subscriber_id: str
    prefix: str
    valid_until: str


@dataclass(frozen=True)
class CsvProblem:
    """A structural problem at a line, with the offending value."""

    line: int
    value: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}: {self.value!r}"


def decode(data: bytes) -> tuple[str | None, CsvProblem | None]:
    """Decode the file as UTF-8 (a leading byte-order mark is dropped); report where it is not."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        bad = data[err.start : err.end].hex()
        return None, CsvProblem(line, bad, "not UTF-8")


def _control_character_field(record: list[str]) -> tuple[str, str] | None:
    """The first field (name, value) holding a control character: stored verbatim they would
    break every later CSV, log line or page that shows them."""
    for name, value in zip(LEGACY_HEADER, record, strict=True):
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            return name, value
    return None


def parse_legacy_csv(text: str) -> tuple[list[LegacyRow], list[CsvProblem]]:
    """Split the file into rows. Returns every row it could read and every problem it found."""
    rows: list[LegacyRow] = []
    problems: list[CsvProblem] = []
    # newline="" keeps quoted line breaks inside fields, as RFC 4180 allows.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for record in reader:
            line = start
            start = reader.line_num + 1
            if line == 1:
                if tuple(field.strip() for field in record) != LEGACY_HEADER:
                    problems.append(
                        CsvProblem(1, ",".join(record), f"header must be {','.join(LEGACY_HEADER)}")
                    )
                    return rows, problems
                continue
            if not record or record == [""]:
                continue  # a blank line (often the last one) holds no row
            if len(record) != len(LEGACY_HEADER):
                problems.append(
                    CsvProblem(
                        line,
                        ",".join(record),
                        f"expected {len(LEGACY_HEADER)} fields, found {len(record)}",
                    )
                )
                continue
            bad = _control_character_field(record)
            if bad is not None:
                name, value = bad
                problems.append(
                    CsvProblem(
                        line,
                        value[:60],
                        f"{name} holds a control character (NUL, line break, tab...)",
                    )
                )
                continue
            rows.append(LegacyRow(line, *(field.strip() for field in record)))
    except csv.Error as err:
        problems.append(CsvProblem(start, "", f"malformed CSV ({err})"))
    if start == 1:
        problems.append(CsvProblem(1, "", "empty file: no header"))
    return rows, problems
