"""The legacy-registry CSV format: parsing its structure, with the file's line number of every row.

RFC 4180 CSV in UTF-8, CRLF or LF line ends, header exactly LEGACY_HEADER. Semantic checks
(prefixes, categories, dates, overlaps) belong to the import service; this module says which rows
the file holds and where each starts, so every later error can name the line a person would open.

Cells are taken as literal text: one starting with `=`, `+`, `-` or `@` (a spreadsheet formula)
is stored as typed and never evaluated (the registry writes no CSV; whatever writes one later
must neutralise such cells). Control characters are refused, and so is a cell longer than its
column holds, so that PostgreSQL never truncates or refuses a row half-way through an import.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from vpnreg.core.excerpt import excerpt

LEGACY_HEADER = ("organisation", "category", "isp", "subscriber_id", "prefix", "valid_until")

#: The longest value each column takes: the registry's column sizes (organisation and ISP names
#: 200, category 32, subscriber id 64), the API's 64 for a prefix, and room for a padded date.
FIELD_MAX = {
    "organisation": 200,
    "category": 32,
    "isp": 200,
    "subscriber_id": 64,
    "prefix": 64,
    "valid_until": 32,
}

#: Byte-order marks of the encodings people save a spreadsheet as by mistake.
_FOREIGN_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


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
    """Decode the file as UTF-8 (a leading byte-order mark is dropped); report where it is not.

    UTF-16 and UTF-32 files (by their byte-order mark, or without one by their many NUL bytes)
    are named as such, with what to do, rather than as a stray byte or a header of NULs.
    """
    for bom, name in _FOREIGN_BOMS:
        if data.startswith(bom):
            return None, CsvProblem(
                1, bom.hex(), f"the file is {name}, not UTF-8; save it as UTF-8"
            )
    # Every other byte NUL is UTF-16 text without a mark; a stray NUL in a UTF-8 file is left
    # to the row check, which names its line and field.
    head = data[:4096]
    if head and head.count(0) * 4 >= len(head):
        return None, CsvProblem(
            1, "00", "NUL bytes: the file is UTF-16 or binary, not UTF-8 text; save it as UTF-8"
        )
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        bad = data[err.start : err.end].hex()
        return None, CsvProblem(line, bad, "not UTF-8")


def _oversized_field(record: list[str]) -> tuple[str, str] | None:
    """The first field (name, value) longer than its column holds."""
    for name, value in zip(LEGACY_HEADER, record, strict=True):
        if len(value.strip()) > FIELD_MAX[name]:
            return name, value
    return None


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
                        excerpt(",".join(record)),
                        f"expected {len(LEGACY_HEADER)} fields, found {len(record)}",
                    )
                )
                continue
            oversized = _oversized_field(record)
            if oversized is not None:
                name, value = oversized
                problems.append(
                    CsvProblem(
                        line, excerpt(value), f"{name} is longer than {FIELD_MAX[name]} characters"
                    )
                )
                continue
            bad = _control_character_field(record)
            if bad is not None:
                name, value = bad
                problems.append(
                    CsvProblem(
                        line,
                        excerpt(value),
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
