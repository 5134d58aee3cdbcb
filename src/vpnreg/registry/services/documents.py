"""Documents attached to applications: metadata in the database, files on disk by sha256.

The files live under a storage directory outside the web root, named by their SHA-256, so the
same file uploaded twice is stored once and a name from the uploader never reaches the file
system. A file reaches its place only when the upload's transaction commits. Only PDF and PNG
are accepted, recognised from the content, not from the name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.files import stage
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import FieldError, NotFound, ValidationFailed
from vpnreg.registry.models import Document
from vpnreg.registry.services.actors import Actor, actor_name, actor_role, require_scope
from vpnreg.registry.services.applications import load_application
from vpnreg.registry.services.transaction import on_outcome, service_transaction
from vpnreg.registry.views import DocumentView

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
#: Every media type a stored document can have.
MEDIA_TYPES = tuple(media_type for _, media_type in _SIGNATURES)


def sniff_media_type(content: bytes) -> str | None:
    """application/pdf or image/png from the first bytes, or None for anything else."""
    for magic, media_type in _SIGNATURES:
        if content.startswith(magic):
            return media_type
    return None


def document_path(storage_dir: Path, sha256: str) -> Path:
    return storage_dir / sha256[:2] / sha256


def _write_after_commit(session: Session, path: Path, content: bytes) -> None:
    """The file is written now (so a full disk refuses the upload) but beside its place, and
    put there only when the unit commits; a rollback removes it. Content-addressed: a file that
    is already there is the same bytes and is left alone."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Uploads carry applicants' papers: readable by the registry's own user only.
    staged = stage(path, content, mode=0o600)
    on_outcome(session, committed=staged.put, rolled_back=staged.discard)


def _clean_filename(filename: str) -> str:
    name = Path(filename.replace("\\", "/")).name.strip() or "document"
    return "".join(ch for ch in name if ch.isprintable())[:255]


def store_document(
    session: Session,
    *,
    application_id: int,
    kind: str,
    filename: str,
    content: bytes,
    actor: Actor,
    now: dt.datetime,
    storage_dir: Path,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> DocumentView:
    """Attach a PDF or PNG to an application the actor may act on."""
    errors: list[FieldError] = []
    if not kind.strip():
        errors.append(FieldError("kind", "required", "say what the document is", kind))
    if not content:
        errors.append(FieldError("file", "empty", "the file is empty", filename))
    elif len(content) > max_bytes:
        errors.append(
            FieldError("file", "too_large", f"the file is larger than {max_bytes} bytes", filename)
        )
    media_type = sniff_media_type(content)
    if content and media_type is None:
        errors.append(FieldError("file", "unsupported_type", "only PDF and PNG files", filename))
    if errors:
        raise ValidationFailed(errors)
    assert media_type is not None
    with service_transaction(session):
        app = load_application(session, application_id)
        if not isinstance(actor, str):
            actor_role(actor)
            require_scope(session, actor, app)
        sha = hashlib.sha256(content).hexdigest()
        _write_after_commit(session, document_path(storage_dir, sha), content)
        doc = Document(
            application_id=app.id,
            kind=kind.strip()[:64],
            filename=_clean_filename(filename),
            sha256=sha,
            size=len(content),
            media_type=media_type,
            uploaded_by=actor_name(actor),
            uploaded_at=now,
        )
        session.add(doc)
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="upload_document",
            object_type="application",
            object_id=app.id,
            after={"document": doc.id, "kind": doc.kind, "sha256": sha, "size": doc.size},
        )
    return DocumentView.of(doc)


def list_documents(session: Session, *, application_id: int) -> list[DocumentView]:
    return [
        DocumentView.of(d)
        for d in session.scalars(
            select(Document).where(Document.application_id == application_id).order_by(Document.id)
        )
    ]


def read_document(
    session: Session, *, document_id: int, storage_dir: Path
) -> tuple[DocumentView, bytes]:
    """The metadata and the bytes; NotFound if either is missing."""
    doc = session.get(Document, document_id)
    if doc is None:
        raise NotFound("document", document_id)
    path = document_path(storage_dir, doc.sha256)
    if not path.is_file():
        raise NotFound("document file", document_id)
    return DocumentView.of(doc), path.read_bytes()
