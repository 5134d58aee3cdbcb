"""Uploaded documents on disk: written whole, private to the registry, stored once per content."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy.orm import Session

from tests.fixtures.documents import png
from tests.registry.conftest import World
from tests.registry.flow import draft
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.services.documents import document_path, read_document, store_document

PNG = png()


def test_a_document_is_stored_once_private_and_without_temporaries(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    app = draft(session, world, config, clock.now(), [("203.0.113.0/28", [])])

    def upload(name: str) -> int:
        doc = store_document(
            session, application_id=app.id, kind="lease", filename=name, content=PNG,
            actor=world.applicant, now=clock.now(), storage_dir=tmp_path,
        )  # fmt: skip
        return doc.id

    first = upload("lease.png")
    (path,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert path.read_bytes() == PNG and stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    second = upload("copy.png")
    assert second != first
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]  # no temporary left
    assert path.stat().st_ino == inode  # the same content is not written again
    doc, content = read_document(session, document_id=second, storage_dir=tmp_path)
    assert content == PNG and document_path(tmp_path, doc.sha256) == path
