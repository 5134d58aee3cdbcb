"""Opening a document: only within the scope that lets the caller see the application, each
download an audit event in the same unit, served under a safe name (issue 15 item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import act, draft
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.errors import NotFound
from vpnreg.registry.models import AuditLogRow, User
from vpnreg.registry.services.documents import download_filename, open_document, store_document
from vpnreg.registry.views import DocumentView

PDF = b"%PDF-1.4\n% a lease\n%%EOF\n"


def _downloads(session: Session) -> list[tuple[str, str]]:
    rows = session.execute(
        select(AuditLogRow.actor, AuditLogRow.object_id)
        .where(AuditLogRow.action == "download_document")
        .order_by(AuditLogRow.seq)
    )
    return [(actor, str(object_id)) for actor, object_id in rows]


@pytest.fixture
def submitted_with_document(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    tmp_path: Path,
) -> tuple[int, int]:  # fmt: skip
    app = draft(session, world, config, clock.now(), [("203.0.113.0/28", [])])
    doc = store_document(
        session, application_id=app.id, kind="sector_certificate", filename="cert.pdf",
        content=PDF, actor=world.applicant, now=clock.now(), storage_dir=tmp_path,
    )  # fmt: skip
    act("submit", session, application_id=app.id, actor=world.applicant, now=clock.now(),
        config=config)  # fmt: skip
    return app.id, doc.id


@pytest.mark.parametrize(
    "who", ["applicant", "isp_user", "sector_user", "regulator"], ids=lambda w: w
)
def test_those_in_scope_download_and_each_download_is_audited(
    session: Session, world: World, clock: FrozenClock, tmp_path: Path,
    submitted_with_document: tuple[int, int], who: str,
) -> None:  # fmt: skip
    app_id, doc_id = submitted_with_document
    user: User = getattr(world, who)
    doc, content = open_document(
        session, application_id=app_id, document_id=doc_id, viewer=user, now=clock.now(),
        storage_dir=tmp_path,
    )  # fmt: skip
    assert content == PDF and doc.media_type == "application/pdf"
    assert _downloads(session) == [(user.username, str(app_id))]


@pytest.mark.parametrize(
    "who", ["bank_applicant", "other_isp_user"], ids=["other-organisation", "other-isp"]
)
def test_those_out_of_scope_get_not_found_and_leave_no_event(
    session: Session, world: World, clock: FrozenClock, tmp_path: Path,
    submitted_with_document: tuple[int, int], who: str,
) -> None:  # fmt: skip
    app_id, doc_id = submitted_with_document
    with pytest.raises(NotFound):
        open_document(
            session, application_id=app_id, document_id=doc_id, viewer=getattr(world, who),
            now=clock.now(), storage_dir=tmp_path,
        )  # fmt: skip
    assert _downloads(session) == []


def test_a_sector_body_outside_its_categories_gets_not_found(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    bank = draft(session, world, config, clock.now(), [("198.51.100.0/28", [])], bank=True)
    doc = store_document(
        session, application_id=bank.id, kind="supporting_document", filename="a.pdf",
        content=PDF, actor=world.bank_applicant, now=clock.now(), storage_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(NotFound):
        open_document(
            session, application_id=bank.id, document_id=doc.id, viewer=world.sector_user,
            now=clock.now(), storage_dir=tmp_path,
        )  # fmt: skip
    assert _downloads(session) == []


def test_a_document_asked_for_under_another_application_is_not_found(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    tmp_path: Path, submitted_with_document: tuple[int, int],
) -> None:  # fmt: skip
    _, doc_id = submitted_with_document
    other = draft(session, world, config, clock.now(), [("198.51.100.0/28", [])])
    with pytest.raises(NotFound):
        open_document(
            session, application_id=other.id, document_id=doc_id, viewer=world.applicant,
            now=clock.now(), storage_dir=tmp_path,
        )  # fmt: skip


def _doc(filename: str, media_type: str = "application/pdf") -> DocumentView:
    return DocumentView(
        id=7, application_id=1, kind="k", filename=filename, sha256="0" * 64, size=1,
        media_type=media_type, uploaded_by="ali", uploaded_at=None,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("filename", "media_type", "expected"),
    [
        ("cert.pdf", "application/pdf", "cert.pdf"),
        ('a"b;\r\nc.pdf', "application/pdf", "a_b___c.pdf"),
        ("..\\..\\etc\\passwd", "application/pdf", "_.._etc_passwd.pdf"),
        ("رسید.png", "image/png", "document-7.png"),
        ("scan", "image/png", "scan.png"),
        (".hidden.pdf", "application/pdf", "hidden.pdf"),
    ],
    ids=["plain", "quotes-and-newlines", "path", "non-ascii", "no-extension", "dot-file"],
)
def test_download_names_are_safe_for_the_header(
    filename: str, media_type: str, expected: str
) -> None:
    assert download_filename(_doc(filename, media_type)) == expected
