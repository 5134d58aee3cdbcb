"""The legacy CSV structure: header, line numbers across CRLF and quoted newlines, bad records."""

from __future__ import annotations

import pytest

from vpnreg.core.legacy_csv import FIELD_MAX, LEGACY_HEADER, decode, parse_legacy_csv

HEADER = ",".join(LEGACY_HEADER)


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_rows_carry_their_file_line(eol: str) -> None:
    text = eol.join(
        [
            HEADER,
            "Acme,software_house,NetCo,A-1,192.0.2.0/24,2027-01-31",
            "",
            '"Beta, Inc.",bank,NetCo,"B-2",198.51.100.0/24,2027-02-28',
        ]
    )
    rows, problems = parse_legacy_csv(text + eol)
    assert problems == []
    assert [(r.line, r.organisation, r.prefix) for r in rows] == [
        (2, "Acme", "192.0.2.0/24"),
        (4, "Beta, Inc.", "198.51.100.0/24"),
    ]


def test_a_quoted_newline_is_refused_and_later_line_numbers_stay_true() -> None:
    text = (
        f'{HEADER}\n"Multi\nLine",bank,NetCo,X,192.0.2.0/24,2027-01-31\n'
        "C,bank,N,Y,198.51.100.0/24,2027-01-31\n"
    )
    rows, problems = parse_legacy_csv(text)
    assert [(p.line, p.value) for p in problems] == [(2, "Multi\nLine")]
    assert "organisation holds a control character" in problems[0].message
    assert [r.line for r in rows] == [4]


@pytest.mark.parametrize("bad", ["A\x00B", "tab\there", "cr\rhere", "del\x7f"])
def test_control_characters_in_any_field_are_refused(bad: str) -> None:
    text = f'{HEADER}\nA,bank,N,"{bad}",192.0.2.0/24,2027-01-31\n'
    rows, problems = parse_legacy_csv(text)
    assert rows == []
    assert problems[0].line == 2 and "subscriber_id" in problems[0].message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("org,cat\nA,b\n", 1, "header must be"),
        ("", 1, "empty file"),
        (f"{HEADER}\nA,bank,N,S,192.0.2.0/24\n", 2, "expected 6 fields, found 5"),
        (f'{HEADER}\nA,bank,N,S,192.0.2.0/24,2027-01-01\n"B,bank\n', 3, "malformed CSV"),
    ],
    ids=["wrong-header", "empty", "short-row", "unterminated-quote"],
)
def test_structural_problems_name_the_line(text: str, line: int, fragment: str) -> None:
    _rows, problems = parse_legacy_csv(text)
    assert problems, "expected a problem"
    assert problems[0].line == line
    assert fragment in problems[0].message


def test_decode_reports_the_line_of_bad_utf8_and_drops_a_bom() -> None:
    text, problem = decode(b"\xef\xbb\xbf" + HEADER.encode() + b"\n")
    assert problem is None
    assert text is not None and text.startswith("organisation")
    text, problem = decode(HEADER.encode() + b"\nA\xff,bank\n")
    assert text is None and problem is not None
    assert problem.line == 2
    assert problem.value == "ff"


ROW = "Acme,bank,NetCo,A-1,192.0.2.0/24,2027-01-31"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(f"{HEADER}\n{ROW}\n".encode("utf-16"), "the file is UTF-16", id="utf-16-bom"),
        pytest.param(
            b"\xfe\xff" + f"{HEADER}\n{ROW}\n".encode("utf-16-be"),
            "the file is UTF-16",
            id="utf-16-be-bom",
        ),
        pytest.param(f"{HEADER}\n{ROW}\n".encode("utf-32"), "the file is UTF-32", id="utf-32-bom"),
        pytest.param(f"{HEADER}\n{ROW}\n".encode("utf-16-le"), "NUL bytes", id="utf-16-no-bom"),
        pytest.param(f"{HEADER}\nAçme,bank\n".encode("latin-1"), "not UTF-8", id="latin-1"),
    ],
)
def test_files_in_another_encoding_are_named_as_such(data: bytes, fragment: str) -> None:
    text, problem = decode(data)
    assert text is None and problem is not None
    assert fragment in problem.message
    assert "\x00" not in str(problem)


def test_a_stray_nul_in_utf8_is_left_to_the_row_check_with_its_line() -> None:
    text, problem = decode(f"{HEADER}\n{ROW}\nB\x00,bank,N,S,198.51.100.0/24,2027-01-31\n".encode())
    assert problem is None and text is not None
    rows, problems = parse_legacy_csv(text)
    assert [r.line for r in rows] == [2]
    assert [(p.line, "organisation holds a control character" in p.message) for p in problems] == [
        (3, True)
    ]


@pytest.mark.parametrize("name", LEGACY_HEADER)
def test_a_cell_longer_than_its_column_is_refused_with_an_excerpt(name: str) -> None:
    cells = dict(zip(LEGACY_HEADER, ROW.split(","), strict=True))
    cells[name] = "x" * (FIELD_MAX[name] + 1)
    rows, problems = parse_legacy_csv(f"{HEADER}\n{','.join(cells.values())}\n")
    assert rows == []
    assert [(p.line, p.message) for p in problems] == [
        (2, f"{name} is longer than {FIELD_MAX[name]} characters")
    ]
    assert len(problems[0].value) <= 60 + len("... (201 characters)")
    cells[name] = "x" * FIELD_MAX[name]
    rows, problems = parse_legacy_csv(f"{HEADER}\n{','.join(cells.values())}\n")
    assert problems == [] and len(rows) == 1


def test_a_huge_record_is_quoted_by_an_excerpt() -> None:
    rows, problems = parse_legacy_csv(f"{HEADER}\n{'y,' * 50_000}y\n")
    assert rows == [] and problems[0].message == "expected 6 fields, found 50001"
    assert len(str(problems[0])) < 200


@pytest.mark.parametrize(
    "cell",
    ["=cmd|' /C calc'!A0", "+92 Traders", "-Minus Ltd", "@Home Networks", "=1+1", "=HYPERLINK(x)"],
)
def test_formula_cells_are_literal_text(cell: str) -> None:
    # Deliberate: a name may begin with +, - or @; nothing here evaluates a cell, and the
    # registry writes no CSV where a spreadsheet could (docs/reliability.md).
    quoted_cell = '"' + cell.replace('"', '""') + '"'
    rows, problems = parse_legacy_csv(
        f"{HEADER}\n{quoted_cell},bank,{quoted_cell},{quoted_cell},192.0.2.0/24,2027-01-31\n"
    )
    assert problems == []
    assert (rows[0].organisation, rows[0].isp, rows[0].subscriber_id) == (cell, cell, cell)


def test_a_hundred_thousand_line_file_is_read_with_true_line_numbers() -> None:
    body = "".join(
        f"Org {i % 97},bank,NetCo,S{i},2001:db8:{i // 256:x}:{i % 256:x}00::/56,2027-01-31\r\n"
        for i in range(100_000)
    )
    rows, problems = parse_legacy_csv(f"{HEADER}\r\n{body}\r\nLast,bank,N,S,x,2027-01-31\r\n")
    assert problems == []
    assert len(rows) == 100_001
    assert (rows[0].line, rows[-2].line, rows[-1].line) == (2, 100_001, 100_003)
