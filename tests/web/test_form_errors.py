"""Form errors in the words of the form: internal locations mapped to labels and input ids."""

from __future__ import annotations

import pytest

from vpnreg.registry.errors import FieldError
from vpnreg.web.form_errors import shown_errors


@pytest.mark.parametrize(
    ("location", "ids", "text", "target"),
    [
        ("registration_number", {}, "Registration number: m", "registration_number"),
        (
            "registration_number",
            {"registration_number": "s-reg"},
            "Registration number: m",
            "s-reg",
        ),
        ("ISP", {}, "Internet service provider: m", "isp_id"),
        ("reason", {}, "Reason: m", "reason"),
        ("row 1", {}, "Prefix 1: m", "prefix-1"),
        ("row 3 peers[0]", {}, "Peers of prefix 3: m", "peers-3"),
        ("prefixes[0]", {}, "Prefix 1: m", "prefix-1"),
        ("prefixes[1].peers[2]", {}, "Peers of prefix 2: m", "peers-2"),
        ("CSV line 4", {}, "CSV line 4: m", "prefixes_csv"),
        ("CSV line 4 peers[0]", {"csv": "csv-file"}, "CSV line 4, peers: m", "csv-file"),
        ("Sector certificate", {}, "Sector certificate: m", ""),
        ("some_new_field", {}, "Some new field: m", ""),
        ("", {}, "M", ""),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
def test_a_location_is_shown_by_its_label_and_linked_to_its_input(
    location: str, ids: dict[str, str], text: str, target: str
) -> None:
    (shown,) = shown_errors([FieldError(location, "code", "m")], ids)
    assert (shown.text, shown.target) == (text, target)
    assert "[" not in shown.text and "_" not in shown.text


def test_a_mapping_is_read_like_a_field_error() -> None:
    (shown,) = shown_errors([{"field": "", "message": "wrong username or password."}])
    assert (shown.text, shown.target) == ("Wrong username or password.", "")
