"""What each category provides besides its prefixes: the documents required at application and
the kinds offered for later uploads, one table keyed by category (CATEGORY_DOCUMENTS).

A kind belongs to the categories it makes sense for: a letter confirming freelance work only to
freelancers, a note verbale only to foreign missions, a sector body's certificate to the
categories a sector body endorses; "Other supporting document" to everyone.
"""

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
#: What each kind is called on a page, whatever the category.
KIND_LABELS: dict[str, str] = {
    k.kind: k.label for k in (FREELANCER_LETTER, SECTOR_CERTIFICATE, MISSION_NOTE, OTHER)
}


@dataclass(frozen=True)
class CategoryDocuments:
    """`required` must come with a new application; `offered` may be uploaded (required first,
    so the first offered kind is the category's most likely one)."""

    required: tuple[DocumentKind, ...]
    offered: tuple[DocumentKind, ...]


def _kinds(required: tuple[DocumentKind, ...], *optional: DocumentKind) -> CategoryDocuments:
    return CategoryDocuments(required, required + tuple(optional) + (OTHER,))


#: The table, by category (vpnreg.registry.models.Category's values).
CATEGORY_DOCUMENTS: dict[str, CategoryDocuments] = {
    "software_house": _kinds((), SECTOR_CERTIFICATE),
    "call_centre": _kinds((SECTOR_CERTIFICATE,)),
    "freelancer": _kinds((FREELANCER_LETTER,)),
    "bank": _kinds(()),
    "foreign_mission": _kinds((MISSION_NOTE,)),
    "other": _kinds(()),
}
#: A category missing from the table (none today) gets only "Other supporting document".
_FALLBACK = _kinds(())


def document_kinds(category: str) -> CategoryDocuments:
    return CATEGORY_DOCUMENTS.get(category, _FALLBACK)


def required_documents(category: str) -> tuple[DocumentKind, ...]:
    return document_kinds(category).required
