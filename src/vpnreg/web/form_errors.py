"""Form errors as a person reads them: the label they see and the field to jump to.

The registry reports a problem against an internal location ("registration_number",
"prefixes[0].peers[1]", "row 2 peers[0]" once vpnreg.web.portal.prefix_forms has placed it).
This is the one place that turns such a location into the words of the form's own label and
the id of the input it belongs to, for the error summary (links to `#id`) and the message
beside the field (`aria-describedby`). A template may name other ids for its inputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: location -> (the label a person sees, the id the portal's forms give that input)
FIELDS: dict[str, tuple[str, str]] = {
    "name": ("Organisation name", "name"),
    "category": ("Category", "category"),
    "registration_number": ("Registration number", "registration_number"),
    "national_id": ("National ID number", "national_id"),
    "username": ("Username", "username"),
    "password": ("Password", "password"),
    "ISP": ("Internet service provider", "isp_id"),
    "isp_id": ("Internet service provider", "isp_id"),
    "prefixes": ("Prefixes", "prefix-1"),
    "csv": ("CSV file", "prefixes_csv"),
    "file": ("File", "file"),
    "kind": ("Document type", "kind"),
    "reason": ("Reason", "reason"),
    "reason_code": ("Reason code", "reason_code"),
    "decision": ("Decision", "bulk-action"),
    "applications": ("Applications", ""),
    "address": ("IP address", "ip"),
    "tracking_number": ("Tracking number", "tracking_number"),
    "role": ("Role", "role"),
    "link": ("Acts for", "link"),
    "organisation_id": ("Organisation", "organisation_id"),
    "sector_body_id": ("Sector body", "sector_body_id"),
    "text": ("Grounds of appeal", "text"),
    "version": ("Page version", ""),
}

_ROW = re.compile(r"^row (\d+)(?: peers\[\d+\])?$")
_CSV_LINE = re.compile(r"^CSV line (\d+)(?: peers\[\d+\])?$")
_INDEXED = re.compile(r"^prefixes\[(\d+)\](?:\.peers\[\d+\])?$")


@dataclass(frozen=True)
class ShownError:
    """One problem as the page shows it; `target` is the input's id ("" when none)."""

    label: str
    message: str
    target: str

    @property
    def text(self) -> str:
        """For the summary: which field, and what is wrong with it."""
        return f"{self.label}: {self.message}" if self.label else _sentence(self.message)

    @property
    def beside_field(self) -> str:
        """For the message beside the field, under its label: what is wrong, as a sentence."""
        return _sentence(self.message)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def label_and_target(location: str, ids: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The label and input id of an internal location; `ids` (location -> id) are the page's
    own ids where they differ from the usual ones. An unknown location is shown tidied."""
    label, target = _label_and_usual_target(location, (ids or {}).get("csv"))
    return label, (ids or {}).get(location, target)


def _label_and_usual_target(location: str, csv_id: str | None) -> tuple[str, str]:
    if location in FIELDS:
        return FIELDS[location]
    peers = "peers[" in location
    n = None
    if row := _ROW.match(location):
        n = row.group(1)  # the form's own numbering, from 1
    elif indexed := _INDEXED.match(location):
        n = str(int(indexed.group(1)) + 1)
    if n is not None:
        return (f"Peers of prefix {n}", f"peers-{n}") if peers else (f"Prefix {n}", f"prefix-{n}")
    if match := _CSV_LINE.match(location):
        where = f"CSV line {match.group(1)}"
        return (f"{where}, peers" if peers else where), csv_id or FIELDS["csv"][1]
    # Already words (a document's label): shown as they are, linked only if the page names it.
    return _sentence(location.replace("_", " ")), ""


def shown_errors(
    errors: Iterable[object], ids: Mapping[str, str] | None = None
) -> list[ShownError]:
    """Errors (anything with `field` and `message`, such as FieldError, or a mapping with
    those keys) for the page."""
    shown = []
    for error in errors:
        if isinstance(error, Mapping):
            location, message = str(error.get("field") or ""), str(error.get("message", ""))
        else:
            location = str(getattr(error, "field", "") or "")
            message = str(getattr(error, "message", error))
        label, target = label_and_target(location, ids) if location else ("", "")
        shown.append(ShownError(label, message, target))
    return shown
