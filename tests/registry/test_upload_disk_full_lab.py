"""An upload onto a full disk (a small tmpfs; root, hence `_lab.py`): refused with a clear
507 "storage full", nothing stored: no file, no temporary, no document row, no audit event."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.fixtures.disk import fill, small_disk
from tests.fixtures.documents import pdf
from tests.registry.conftest import World
from tests.registry.flow import draft
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.models import AuditLogRow, Document
from vpnreg.registry.services.documents import StorageFull, store_document


def counts(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Document)) or 0,
        session.scalar(select(func.count()).select_from(AuditLogRow)) or 0,
    )


def test_an_upload_onto_a_full_disk_stores_nothing(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    app = draft(session, world, config, clock.now(), [("203.0.113.0/28", [])])
    with small_disk(tmp_path / "disk", size_kib=64) as disk:
        filler = fill(disk)
        before = counts(session)
        with pytest.raises(StorageFull) as caught:
            store_document(
                session, application_id=app.id, kind="lease", filename="lease.pdf",
                content=pdf(b"%" + b"x" * 20_000 + b"\n"), actor=world.applicant,
                now=clock.now(), storage_dir=disk,
            )  # fmt: skip
        assert caught.value.status == 507
        assert "No space left on device" in str(caught.value)
        assert "nothing was stored" in str(caught.value)
        assert counts(session) == before
        assert [p.name for p in disk.rglob("*")] == [filler.name]
        # With room again, the same upload goes through.
        filler.unlink()
        doc = store_document(
            session, application_id=app.id, kind="lease", filename="lease.pdf",
            content=pdf(b"%" + b"x" * 20_000 + b"\n"), actor=world.applicant,
            now=clock.now(), storage_dir=disk,
        )  # fmt: skip
        assert doc.size > 20_000 and counts(session) == (before[0] + 1, before[1] + 1)
