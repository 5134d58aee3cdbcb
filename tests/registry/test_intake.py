"""A whole application form is one unit: the draft, its documents and the submit all happen,
or none does, and document files reach their place only after the commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.errors import StateConflict, ValidationFailed
from vpnreg.registry.models import Application, Document
from vpnreg.registry.services import intake
from vpnreg.registry.services.documents import document_path

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _counts(session: Session) -> tuple[int, int]:
    apps = session.scalar(select(func.count()).select_from(Application)) or 0
    docs = session.scalar(select(func.count()).select_from(Document)) or 0
    return int(apps), int(docs)


def _files(storage: Path) -> list[Path]:
    return sorted(p for p in storage.rglob("*") if p.is_file()) if storage.exists() else []


def _apply(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    clock: FrozenClock,
    storage: Path,
    documents: list[services.DocumentUpload],
) -> Application:
    return services.apply_for_registration(
        session,
        organisation_id=world.soft_org,
        isp_id=world.isp,
        prefixes=[("203.0.113.0/28", [])],
        documents=documents,
        submit=True,
        actor=world.applicant,
        now=clock.now(),
        config=config,
        storage_dir=storage,
    )


def test_a_whole_form_is_created_and_submitted_with_its_documents(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    before = _counts(session)
    app = _apply(
        session, world, config, clock, tmp_path, [services.DocumentUpload("cert", "a.pdf", PDF)]
    )
    assert app.state == "submitted"
    assert _counts(session) == (before[0] + 1, before[1] + 1)
    doc = session.scalars(select(Document).where(Document.application_id == app.id)).one()
    assert _files(tmp_path) == [document_path(tmp_path, doc.sha256)]
    assert document_path(tmp_path, doc.sha256).read_bytes() == PDF


def test_a_bad_document_leaves_no_draft_and_no_file(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    before = _counts(session)
    documents = [
        services.DocumentUpload("cert", "a.pdf", PDF),
        services.DocumentUpload("letter", "b.txt", b"not a pdf"),
    ]
    with pytest.raises(ValidationFailed):
        _apply(session, world, config, clock, tmp_path, documents)
    assert _counts(session) == before
    assert _files(tmp_path) == []  # the first document's staged file went with the rollback


def test_a_refused_submit_takes_the_draft_and_its_files_back(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> Application:
        raise StateConflict("refused for the test")

    monkeypatch.setattr(intake, "take_step", refuse)
    before = _counts(session)
    with pytest.raises(StateConflict):
        _apply(
            session,
            world,
            config,
            clock,
            tmp_path,
            [services.DocumentUpload("cert", "a.pdf", PDF)],
        )
    assert _counts(session) == before
    assert _files(tmp_path) == []
