"""Hostile uploads at the service every upload route calls (store_document): other types behind
a right name or first bytes, empty, oversized, zip bombs, pixel bombs, refused with a code and
nothing stored; hostile file names kept as display text only, never reaching the file system."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.fixtures.documents import docx, pdf, png, zip_bomb
from tests.registry.conftest import World
from tests.registry.flow import draft
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.errors import ValidationFailed
from vpnreg.registry.models import AuditLogRow, Document
from vpnreg.registry.services.documents import MAX_DOCUMENT_BYTES, document_path, store_document

#: (name as uploaded, content, the refusal's code)
HOSTILE = [
    ("empty.pdf", b"", "empty"),
    ("big.pdf", pdf(b"%" + b"x" * MAX_DOCUMENT_BYTES + b"\n"), "too_large"),
    ("archive.pdf", docx(), "unsupported_type"),
    ("bomb.pdf", zip_bomb(), "unsupported_type"),
    ("bomb.png", zip_bomb(), "unsupported_type"),
    ("page.pdf", b"%PDF-1.4\n<html><script>alert(1)</script></html>\n", "unsupported_type"),
    ("polyglot.pdf", b"%PDF-1.4\n" + docx(), "unsupported_type"),
    ("truncated.pdf", pdf()[:-8], "unsupported_type"),
    ("header-only.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "unsupported_type"),
    ("truncated.png", png()[:-12], "unsupported_type"),
    ("pixel-bomb.png", png(100_000, 100_000), "unsupported_type"),
    ("wide.png", png(20_000, 1), "unsupported_type"),
    ("zero.png", png(0, 1), "unsupported_type"),
    ("drawing.png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="x()"/>', "unsupported_type"),
    ("program.pdf", b"MZ\x90\x00" + b"\x00" * 60, "unsupported_type"),
    ("elf.png", b"\x7fELF" + b"\x00" * 60, "unsupported_type"),
    ("anim.png", b"GIF89a" + b"\x00" * 20, "unsupported_type"),
]  # fmt: skip


def _state(session: Session, storage: Path) -> tuple[int, int, list[Path]]:
    documents = session.scalar(select(func.count()).select_from(Document)) or 0
    events = session.scalar(select(func.count()).select_from(AuditLogRow)) or 0
    return documents, events, sorted(storage.rglob("*"))


@pytest.mark.parametrize(
    ("name", "content", "code"), [pytest.param(n, c, k, id=n) for n, c, k in HOSTILE]
)
def test_a_hostile_upload_is_refused_and_nothing_is_stored(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    tmp_path: Path, name: str, content: bytes, code: str,
) -> None:  # fmt: skip
    app = draft(session, world, config, clock.now(), [("203.0.113.0/28", [])])
    storage = tmp_path / "documents"
    storage.mkdir()
    before = _state(session, storage)
    with pytest.raises(ValidationFailed) as caught:
        store_document(
            session, application_id=app.id, kind="lease", filename=name, content=content,
            actor=world.applicant, now=clock.now(), storage_dir=storage,
        )  # fmt: skip
    assert [(e.field, e.code) for e in caught.value.errors] == [("file", code)]
    assert len(str(caught.value)) < 200
    assert _state(session, storage) == before == (0, before[1], [])


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\System32\\drivers\\etc\\hosts.pdf", "hosts.pdf"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("lease\x00.pdf.exe", "lease.pdf.exe"),
        ("\u202efdp.exe", "fdp.exe"),
        ("zero\u200bwidth.pdf", "zerowidth.pdf"),
        ("..", "document"),
        (".", "document"),
        ("", "document"),
        ("x" * 5000 + ".pdf", "x" * 255),
        ("<img src=x onerror=alert(1)>.pdf", "<img src=x onerror=alert(1)>.pdf"),
    ],
    ids=["traversal", "absolute", "windows-absolute", "windows-traversal", "nul", "rtl-override",
         "zero-width", "dot-dot", "dot", "empty", "very-long", "markup"],
)  # fmt: skip
def test_a_hostile_name_is_display_text_and_the_file_stays_in_the_store(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    tmp_path: Path, name: str, shown: str,
) -> None:  # fmt: skip
    app = draft(session, world, config, clock.now(), [("203.0.113.0/28", [])])
    storage = tmp_path / "store" / "documents"
    storage.mkdir(parents=True)
    content = pdf()
    doc = store_document(
        session, application_id=app.id, kind="lease", filename=name, content=content,
        actor=world.applicant, now=clock.now(), storage_dir=storage,
    )  # fmt: skip
    assert doc.filename == shown
    sha = hashlib.sha256(content).hexdigest()
    # The one file written is the content's hash under the store; nothing beside or above it.
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [document_path(storage, sha)]
    # Markup is stored as text; pages escape it (tests/web, tests/e2e).
    assert session.get(Document, doc.id) is not None
