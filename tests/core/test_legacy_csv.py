"""The legacy CSV structure: header, line numbers across CRLF and quoted newlines, bad records."""

from __future__ import annotations

import pytest

from vpnreg.core.legacy_csv import LEGACY_HEADER, decode, parse_legacy_csv

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
