"""A whole application form as one unit: the draft, its documents, and (if asked) the submit.

Either all of it happens or none does: a refused document or a refused submit leaves no draft
behind, and the documents' files reach their place only once the unit has committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from vpnreg.core.review import Action
from vpnreg.registry.services.actors import Person
from vpnreg.registry.services.applications import PrefixRequest, create_application
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.documents import store_document
from vpnreg.registry.services.transaction import run_unit, service_transaction
from vpnreg.registry.services.workflow import StepRequest, take_step
from vpnreg.registry.views import ApplicationView


@dataclass(frozen=True)
class DocumentUpload:
    """One document sent with the form: what it is, the uploader's file name, the bytes."""

    kind: str
    filename: str
    content: bytes


def apply_for_registration(
    session: Session,
    *,
    organisation_id: int,
    isp_id: int,
    prefixes: Sequence[PrefixRequest],
    documents: Sequence[DocumentUpload] = (),
    subscriber_id: str | None = None,
    protocols: Sequence[str] = (),
    submit: bool,
    actor: Person,
    now: dt.datetime,
    config: ServiceConfig,
    storage_dir: Path | None = None,
) -> ApplicationView:
    """Create the application, attach `documents`, and submit it if `submit`: one transaction,
    run again as a whole if the database stayed locked. Errors are the services' own."""
    if documents and storage_dir is None:
        raise ValueError("documents need a storage_dir")

    def unit() -> ApplicationView:
        with service_transaction(session):
            app = create_application(
                session,
                organisation_id=organisation_id,
                isp_id=isp_id,
                prefixes=prefixes,
                subscriber_id=subscriber_id,
                protocols=protocols,
                actor=actor,
                now=now,
                config=config,
            )
            for doc in documents:
                assert storage_dir is not None
                store_document(
                    session,
                    application_id=app.id,
                    kind=doc.kind,
                    filename=doc.filename,
                    content=doc.content,
                    actor=actor,
                    now=now,
                    storage_dir=storage_dir,
                )
            if submit:
                step = StepRequest(
                    action=Action.SUBMIT,
                    application_id=app.id,
                    actor=actor,
                    expected_version=app.version,
                )
                app = take_step(session, step, now=now, config=config)
        return app

    return run_unit(session, unit)
