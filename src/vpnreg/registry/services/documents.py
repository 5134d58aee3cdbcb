"""Documents attached to applications: metadata in the database, files on disk by sha256.

The files live under a storage directory outside the web root, named by their SHA-256, so the
same file uploaded twice is stored once and a name from the uploader never reaches the file
system. A file reaches its place only when the upload's transaction commits. Only PDF and PNG
are accepted, recognised from the content's structure, not from the name (so no ZIP-based type,
and no archive is ever opened: a zip bomb is refused as what it is, a ZIP).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import struct
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import PENDING_STATES, Role, State
from vpnreg.files import stage
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import (
    FieldError,
    NotFound,
    RegistryError,
    StateConflict,
    ValidationFailed,
)
from vpnreg.registry.models import Application, Document
from vpnreg.registry.services.actors import (
    Actor,
    Person,
    actor_name,
    require_role,
    require_scope,
)
from vpnreg.registry.services.applications import load_application
from vpnreg.registry.services.queries import visibility
from vpnreg.registry.services.transaction import on_outcome, service_transaction
from vpnreg.registry.views import DocumentView

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
_PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IHDR = b"\x00\x00\x00\x0dIHDR"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: A PNG of more pixels than a 600 dpi scan of an A3 page is a decompression bomb for whoever
#: opens it (the registry itself never decodes one).
MAX_PNG_SIDE = 16_384
MAX_PNG_PIXELS = 80_000_000
#: Every media type a stored document can have (what sniff_media_type answers).
MEDIA_TYPES = ("application/pdf", "image/png")


class StorageFull(RegistryError):
    """The document store could not take the file (a full or failing disk); nothing stored."""

    code = "storage_full"
    #: 507 Insufficient Storage (RFC 4918): the server cannot store what the request needs.
    status = 507

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the document store cannot take the file now ({reason}); nothing was stored, "
            "try again later"
        )


def sniff_media_type(content: bytes) -> str | None:
    """application/pdf or image/png when the content is built like one, else None.

    Not only the first bytes: a PDF must also end with its `%%EOF` marker, and a PNG must start
    with its header chunk, end with its end chunk and claim a plausible size. So a file that
    merely begins like one (an HTML page, a ZIP or an executable behind `%PDF-`), a truncated
    upload, or a pixel bomb is refused. Nothing is decoded or decompressed.
    """
    if _PDF_HEADER.match(content) and b"%%EOF" in content[-1024:]:
        return "application/pdf"
    if (
        content.startswith(_PNG_SIGNATURE)
        and content[8:16] == _PNG_IHDR
        and content.rstrip(b"\x00").endswith(_PNG_IEND)
        and len(content) >= 8 + 25 + 12
    ):
        width, height = struct.unpack(">II", content[16:24])
        sides_fit = 0 < width <= MAX_PNG_SIDE and 0 < height <= MAX_PNG_SIDE
        if sides_fit and width * height <= MAX_PNG_PIXELS:
            return "image/png"
    return None


def document_path(storage_dir: Path, sha256: str) -> Path:
    return storage_dir / sha256[:2] / sha256


def _write_after_commit(session: Session, path: Path, content: bytes) -> None:
    """The file is written now (so a full disk refuses the upload) but beside its place, and
    put there only when the unit commits; a rollback removes it. Content-addressed: a file that
    is already there is the same bytes and is left alone."""
    if path.exists():
        return
    made_directory = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Uploads carry applicants' papers: readable by the registry's own user only.
        staged = stage(path, content, mode=0o600)
    except OSError as exc:  # stage removed its temporary file; the transaction rolls back
        if made_directory:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        raise StorageFull(exc.strerror or type(exc).__name__) from exc
    on_outcome(session, committed=staged.put, rolled_back=staged.discard)


def _clean_filename(filename: str) -> str:
    """The name as shown, never used on disk: its last path part, printable characters only
    (no NUL, no bidirectional or zero-width controls), at most 255, never "." or ".."."""
    name = Path(filename.replace("\\", "/").replace("\x00", "")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:255]
    return "document" if name.strip(".") == "" else name


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
    """Attach a PDF or PNG to an application the actor may act on, before a decision on it
    (PENDING_STATES; services.available_actions offers the upload in the same states)."""
    errors: list[FieldError] = []
    if not kind.strip():
        errors.append(FieldError("kind", "required", "say what the document is", kind))
    if not content:
        errors.append(FieldError("file", "empty", "the file is empty", filename))
    elif len(content) > max_bytes:
        errors.append(
            FieldError("file", "too_large", f"the file is larger than {max_bytes} bytes", filename)
        )
    # Typed only when complete: a route reads one byte past the limit, and that cut-off head
    # must be called too large, not also "not a PDF" for its missing end.
    media_type = sniff_media_type(content) if 0 < len(content) <= max_bytes else None
    if 0 < len(content) <= max_bytes and media_type is None:
        errors.append(FieldError("file", "unsupported_type", "only PDF and PNG files", filename))
    if errors:
        raise ValidationFailed(errors)
    assert media_type is not None
    with service_transaction(session):
        app = load_application(session, application_id)
        if not isinstance(actor, str):
            # The applicant's papers: the routes allow only applicants, and so does the service.
            require_role(actor, Role.APPLICANT)
            require_scope(session, actor, app)
            if State(app.state) not in PENDING_STATES:
                # After the decision the papers are the ones it was made on.
                raise StateConflict(
                    f"documents are added only before a decision; {app.tracking_number} is "
                    f"{app.state.replace('_', ' ')}"
                )
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


def open_document(
    session: Session,
    *,
    application_id: int,
    document_id: int,
    viewer: Person,
    now: dt.datetime,
    storage_dir: Path,
) -> tuple[DocumentView, bytes]:
    """A document of an application `viewer` may see (the same scope rule as for seeing the
    application), with its bytes; the download is an audit event written in the unit that
    checked the scope. NotFound for anything out of scope, so its existence is not told."""
    with service_transaction(session):
        app = session.scalar(
            select(Application).where(Application.id == application_id, visibility(viewer))
        )
        doc = session.get(Document, document_id)
        if app is None or doc is None or doc.application_id != app.id:
            raise NotFound("document", document_id)
        path = document_path(storage_dir, doc.sha256)
        if not path.is_file():
            raise NotFound("document file", document_id)
        content = path.read_bytes()
        append_event(
            session,
            time=now,
            actor=actor_name(viewer),
            action="download_document",
            object_type="application",
            object_id=app.id,
            after={"document": doc.id, "kind": doc.kind, "sha256": doc.sha256},
        )
    return DocumentView.of(doc), content


def download_filename(doc: DocumentView) -> str:
    """The stored name made safe for a Content-Disposition header: ASCII letters, digits and
    `._-` only (anything else becomes `_`), never empty, never a dot file."""
    cleaned = "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in doc.filename
    )
    cleaned = cleaned.lstrip(".")[:100]
    extension = {"application/pdf": ".pdf", "image/png": ".png"}.get(doc.media_type, "")
    if not any(ch.isalnum() for ch in cleaned.lower().removesuffix(extension)):
        cleaned = f"document-{doc.id}{extension}"
    elif extension and not cleaned.lower().endswith(extension):
        cleaned += extension
    return cleaned


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
