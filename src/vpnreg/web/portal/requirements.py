"""What each category must provide besides its prefixes: the documents asked for at application."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocumentKind:
    kind: str
    label: str


FREELANCER_LETTER = DocumentKind("freelancer_letter", "Letter confirming freelance work")
SECTOR_CERTIFICATE = DocumentKind("sector_certificate", "Sector body certificate")
MISSION_NOTE = DocumentKind("diplomatic_note", "Note verbale from the ministry")
OTHER = DocumentKind("supporting_document", "Other supporting document")

#: Documents that must accompany a new application, by category.
REQUIRED: dict[str, tuple[DocumentKind, ...]] = {
    "freelancer": (FREELANCER_LETTER,),
    "call_centre": (SECTOR_CERTIFICATE,),
    "foreign_mission": (MISSION_NOTE,),
}

#: Every kind an applicant may upload later.
DOCUMENT_KINDS: tuple[DocumentKind, ...] = (
    FREELANCER_LETTER,
    SECTOR_CERTIFICATE,
    MISSION_NOTE,
    OTHER,
)


def required_documents(category: str) -> tuple[DocumentKind, ...]:
    return REQUIRED.get(category, ())
