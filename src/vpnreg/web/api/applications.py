"""/api/v1/applications: create, read, list, timeline, and one literal path per transition
(the step's name, with a hyphen for an underscore: withdraw-attestation).

Every transition needs `If-Match` with the ETag of the version it acts on: missing gives 428,
stale gives 412 (the service refuses it; nothing changes). Each is the registry's one step entry
(`take_step`), as in the portal and the CLI. An application the caller may not see answers 404,
as if it did not exist.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from vpnreg.registry import services
from vpnreg.registry.services import documents as document_service
from vpnreg.registry.services import queries
from vpnreg.registry.services.idempotency import KEY_PATTERN
from vpnreg.registry.views import (
    ApplicationView,
    DocumentView,
    ProtocolAmendmentView,
    UserView,
)
from vpnreg.web.auth import AppClock, Config, CurrentUser, DbSession, OptionalUser
from vpnreg.web.bounds import Offset, PathId, QueryId
from vpnreg.web.documents import document_response
from vpnreg.web.policy import (
    ADMIN,
    APPLICANT,
    ISP,
    READERS,
    REGULATOR,
    SECTOR_BODY,
    Access,
    allow,
    only,
)
from vpnreg.web.problems import Problem
from vpnreg.web.schemas import (
    FILLED_IN,
    KEYWORD,
    TEXT,
    AmendmentPublic,
    AmendPeersBody,
    AmendProtocolsBody,
    AppealBody,
    ApplicationCreate,
    ApplicationPage,
    ApplicationPublic,
    AttestationWithdrawalBody,
    DecisionBody,
    DocumentPublic,
    ProtocolAmendmentPublic,
    RejectBody,
    RevokeBody,
    TimelineEntryPublic,
)

router = APIRouter(prefix="/applications", tags=["applications"])
BASE = "/api/v1/applications"
ONE = BASE + "/{application_id}"

#: Who may take each step through its literal path.
STEP_ACCESS: dict[str, Access] = {
    "submit": only(APPLICANT),
    "verify": only(ISP),
    "endorse": only(SECTOR_BODY),
    "approve": only(REGULATOR),
    "reject": only(ISP, SECTOR_BODY, REGULATOR),
    "revoke": only(REGULATOR),
    "withdraw": only(APPLICANT),
    "appeal": only(APPLICANT),
    "uphold": only(REGULATOR),
    "overturn": only(REGULATOR),
    "withdraw_attestation": only(ISP),
    "reattest": only(ISP),
    services.RENEW: only(APPLICANT),
}

_ETAG = re.compile(r'^\s*(?:W/)?"(\d{1,12})"\s*$')

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The ETag of the version acted on, e.g. "3" (428 without it, 412 if stale)',
    ),
]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=KEY_PATTERN,
        description="Optional. A key of the client's choosing (1 to 128 printable ASCII "
        "characters): sent again with the same body within 24 hours, the create answers with "
        "the application the first request made instead of making another; the same key with "
        "another body is refused (422).",
    ),
]


def etag(app: ApplicationView) -> str:
    return f'"{app.version}"'


def expected_version(if_match: str | None) -> int:
    if if_match is None:
        raise Problem(
            428,
            "if-match-required",
            "send If-Match with the application's ETag (GET it first) so that a change made "
            "meanwhile is not overwritten",
        )
    match = _ETAG.match(if_match)
    if match is None:
        raise Problem(412, "stale-version", f"If-Match {if_match!r} is not an ETag of this API")
    return int(match.group(1))


def _answer(app: ApplicationView, status: int = 200, location: bool = False) -> JSONResponse:
    headers = {"ETag": etag(app)}
    if location:
        headers["Location"] = f"{BASE}/{app.id}"
    body = ApplicationPublic.of(app).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


def _visible(db: DbSession, application_id: PathId, viewer: UserView | None) -> ApplicationView:
    return queries.visible_application(db, application_id=application_id, viewer=viewer)


@router.get(
    "", dependencies=[allow(READERS)], response_model=ApplicationPage, summary="List applications"
)
def list_applications(
    db: DbSession,
    viewer: OptionalUser,
    state: Annotated[str | None, Query(max_length=32, pattern=KEYWORD)] = None,
    category: Annotated[str | None, Query(max_length=32, pattern=KEYWORD)] = None,
    organisation_id: QueryId = None,
    isp_id: QueryId = None,
    q: Annotated[
        str | None, Query(max_length=64, pattern=TEXT, description="tracking number or prefix")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
    offset: Offset = 0,
) -> ApplicationPage:
    page = queries.list_applications(
        db,
        viewer=viewer,
        state=state,
        category=category,
        organisation_id=organisation_id,
        isp_id=isp_id,
        search=q,
        limit=limit,
        offset=offset,
    )
    return ApplicationPage(
        items=[ApplicationPublic.of(a) for a in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    dependencies=[allow(only(APPLICANT, ADMIN))],
    status_code=201,
    response_model=ApplicationPublic,
    summary="Create a draft application",
)
def create_application(
    body: ApplicationCreate,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    config: Config,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    organisation_id = body.organisation_id or user.organisation_id
    if organisation_id is None:
        raise Problem(
            422,
            "validation-failed",
            "organisation_id: name the organisation",
            extra={
                "errors": [{"field": "organisation_id", "code": "required", "message": "required"}]
            },
        )
    app = services.create_application(
        db,
        organisation_id=organisation_id,
        isp_id=body.isp_id,
        prefixes=[(p.prefix, p.peers) for p in body.prefixes],
        subscriber_id=body.subscriber_id,
        protocols=body.protocols,
        actor=user,
        now=clock.now(),
        config=config,
        idempotency_key=idempotency_key,
    )
    return _answer(app, 201, location=True)


@router.get(
    "/{application_id}",
    dependencies=[allow(READERS)],
    response_model=ApplicationPublic,
    summary="Read one application",
)
def read_application(application_id: PathId, db: DbSession, viewer: OptionalUser) -> JSONResponse:
    return _answer(_visible(db, application_id, viewer))


@router.get(
    "/{application_id}/timeline",
    dependencies=[allow(READERS)],
    response_model=list[TimelineEntryPublic],
    summary="The review steps of one application",
)
def timeline(
    application_id: PathId, db: DbSession, viewer: OptionalUser
) -> list[TimelineEntryPublic]:
    _visible(db, application_id, viewer)
    return [
        TimelineEntryPublic(**vars(entry))
        for entry in queries.application_timeline(db, application_id=application_id)
    ]


@router.get(
    "/{application_id}/amendments",
    dependencies=[allow(READERS)],
    response_model=list[AmendmentPublic],
    summary="Pending peer amendments",
)
def amendments(
    application_id: PathId, db: DbSession, viewer: OptionalUser
) -> list[AmendmentPublic]:
    _visible(db, application_id, viewer)
    return [
        AmendmentPublic.model_validate(a, from_attributes=True)
        for a in queries.pending_amendments(db, application_id=application_id)
    ]


# --- transitions -------------------------------------------------------------------------------


def _take(
    action: str,
    application_id: PathId,
    if_match: str | None,
    db: DbSession,
    user: UserView,
    clock: AppClock,
    config: Config,
    arguments: dict[str, Any] | None = None,
    status: int = 200,
) -> JSONResponse:
    _visible(db, application_id, user)
    step = services.StepRequest(
        action=action,
        application_id=application_id,
        actor=user,
        expected_version=expected_version(if_match),
        arguments=services.arguments_for(action, arguments or {}),
    )
    app = services.take_step(db, step, now=clock.now(), config=config)
    return _answer(app, status, location=status == 201)


def _doc(action: str, summary: str) -> dict[str, Any]:
    return {
        "dependencies": [allow(STEP_ACCESS[action])],
        "response_model": ApplicationPublic,
        "summary": f"{summary.capitalize()} an application",
    }


def _path(action: str) -> str:
    return f"/{{application_id}}/{action.replace('_', '-')}"


def _plain_transition(action: str) -> None:
    """One literal POST path for a transition that takes no body (each listed in OpenAPI)."""

    def endpoint(
        application_id: PathId,
        db: DbSession,
        user: CurrentUser,
        clock: AppClock,
        config: Config,
        if_match: IfMatch = None,
    ) -> JSONResponse:
        return _take(action, application_id, if_match, db, user, clock, config)

    endpoint.__name__ = endpoint.__qualname__ = action
    router.post(_path(action), **_doc(action, action))(endpoint)


for _action in ("submit", "verify", "endorse", "approve", "withdraw", "reattest"):
    _plain_transition(_action)


def _body_transition(action: str, body_model: type[BaseModel], summary: str) -> None:
    """One literal POST path for a transition whose JSON body's fields are the service's
    step arguments (reason, reason_code, text)."""

    def endpoint(
        application_id: PathId,
        body: BaseModel,
        db: DbSession,
        user: CurrentUser,
        clock: AppClock,
        config: Config,
        if_match: IfMatch = None,
    ) -> JSONResponse:
        return _take(action, application_id, if_match, db, user, clock, config, body.model_dump())

    endpoint.__annotations__["body"] = body_model  # FastAPI reads the body's schema from here
    endpoint.__name__ = endpoint.__qualname__ = action
    router.post(_path(action), **_doc(action, summary))(endpoint)


_body_transition("reject", RejectBody, "reject")
_body_transition("revoke", RevokeBody, "revoke")
_body_transition("appeal", AppealBody, "appeal")
_body_transition("uphold", DecisionBody, "uphold (an appeal against)")
_body_transition("overturn", DecisionBody, "overturn (the rejection of)")
# The ISP that attested takes it back (the registration is suspended, off the feed at once);
# `reattest` above restores it.
_body_transition("withdraw_attestation", AttestationWithdrawalBody, "withdraw the attestation of")


@router.post(
    "/{application_id}/renew",
    dependencies=[allow(STEP_ACCESS[services.RENEW])],
    status_code=201,
    response_model=ApplicationPublic,
    summary="Renew a registration (creates the renewal application)",
)
def renew(
    application_id: PathId,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    config: Config,
    if_match: IfMatch = None,
) -> JSONResponse:
    return _take(services.RENEW, application_id, if_match, db, user, clock, config, status=201)


@router.post(
    "/{application_id}/amend-peers",
    dependencies=[allow(only(APPLICANT))],
    status_code=202,
    response_model=AmendmentPublic,
    summary="Ask for a prefix's peers to change (in force once a regulator approves)",
)
def amend_peers(
    application_id: PathId,
    body: AmendPeersBody,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    config: Config,
    if_match: IfMatch = None,
) -> JSONResponse:
    _visible(db, application_id, user)
    amendment = services.amend_peers(
        db,
        application_id=application_id,
        prefix=body.prefix,
        peers=body.peers,
        actor=user,
        now=clock.now(),
        config=config,
        expected_version=expected_version(if_match),
    )
    app = queries.visible_application(db, application_id=application_id, viewer=user)
    out = AmendmentPublic.model_validate(amendment, from_attributes=True)
    return JSONResponse(out.model_dump(mode="json"), status_code=202, headers={"ETag": etag(app)})


@router.post(
    "/{application_id}/amendments/{amendment_id}/approve",
    dependencies=[allow(only(REGULATOR))],
    response_model=ApplicationPublic,
    summary="Approve a pending peer amendment",
)
def approve_amendment(
    application_id: PathId,
    amendment_id: PathId,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    config: Config,
    if_match: IfMatch = None,
) -> JSONResponse:
    _visible(db, application_id, user)
    if amendment_id not in {
        a.id for a in queries.pending_amendments(db, application_id=application_id)
    }:
        raise Problem(404, "not-found", f"no pending amendment {amendment_id} on this application")
    app = services.approve_amendment(
        db,
        amendment_id=amendment_id,
        actor=user,
        now=clock.now(),
        config=config,
        expected_version=expected_version(if_match),
    )
    return _answer(app)


@router.get(
    "/{application_id}/protocol-amendments",
    dependencies=[allow(READERS)],
    response_model=list[ProtocolAmendmentPublic],
    summary="The pending protocol amendment (none or one)",
)
def protocol_amendments(
    application_id: PathId, db: DbSession, viewer: OptionalUser
) -> list[ProtocolAmendmentPublic]:
    _visible(db, application_id, viewer)
    pending = services.pending_protocol_amendment(db, application_id=application_id)
    return [] if pending is None else [_protocol_amendment(pending)]


def _protocol_amendment(amendment: ProtocolAmendmentView) -> ProtocolAmendmentPublic:
    return ProtocolAmendmentPublic.model_validate(amendment, from_attributes=True)


@router.post(
    "/{application_id}/amend-protocols",
    dependencies=[allow(only(APPLICANT))],
    status_code=202,
    response_model=ProtocolAmendmentPublic,
    summary="Ask for the VPN protocol list to change (in force once a regulator approves)",
)
def amend_protocols(
    application_id: PathId,
    body: AmendProtocolsBody,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    if_match: IfMatch = None,
) -> JSONResponse:
    _visible(db, application_id, user)
    amendment = services.amend_protocols(
        db,
        application_id=application_id,
        protocols=body.protocols,
        actor=user,
        now=clock.now(),
        expected_version=expected_version(if_match),
    )
    app = queries.visible_application(db, application_id=application_id, viewer=user)
    out = _protocol_amendment(amendment).model_dump(mode="json")
    return JSONResponse(out, status_code=202, headers={"ETag": etag(app)})


def _decide_protocols(
    application_id: int,
    amendment_id: int,
    approve: bool,
    db: DbSession,
    user: UserView,
    clock: AppClock,
    if_match: str | None,
) -> JSONResponse:
    _visible(db, application_id, user)
    pending = services.pending_protocol_amendment(db, application_id=application_id)
    if pending is None or pending.id != amendment_id:
        raise Problem(
            404, "not-found", f"no pending protocol amendment {amendment_id} on this application"
        )
    app = services.decide_protocol_amendment(
        db,
        amendment_id=amendment_id,
        approve=approve,
        actor=user,
        now=clock.now(),
        expected_version=expected_version(if_match),
    )
    return _answer(app)


@router.post(
    "/{application_id}/protocol-amendments/{amendment_id}/approve",
    dependencies=[allow(only(REGULATOR))],
    response_model=ApplicationPublic,
    summary="Approve the pending protocol amendment: the new list is in force (and in the feed)",
)
def approve_protocol_amendment(
    application_id: PathId,
    amendment_id: PathId,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    if_match: IfMatch = None,
) -> JSONResponse:
    return _decide_protocols(application_id, amendment_id, True, db, user, clock, if_match)


@router.post(
    "/{application_id}/protocol-amendments/{amendment_id}/refuse",
    dependencies=[allow(only(REGULATOR))],
    response_model=ApplicationPublic,
    summary="Refuse the pending protocol amendment: the old list stays in force",
)
def refuse_protocol_amendment(
    application_id: PathId,
    amendment_id: PathId,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    if_match: IfMatch = None,
) -> JSONResponse:
    return _decide_protocols(application_id, amendment_id, False, db, user, clock, if_match)


# --- documents ---------------------------------------------------------------------------------


def _storage(request: Request) -> Any:
    return request.app.state.document_dir


def _document_public(doc: DocumentView) -> DocumentPublic:
    return DocumentPublic.model_validate(doc, from_attributes=True)


@router.get(
    "/{application_id}/documents",
    dependencies=[allow(READERS)],
    response_model=list[DocumentPublic],
    summary="Documents of an application",
)
def list_documents(
    application_id: PathId, db: DbSession, viewer: OptionalUser
) -> list[DocumentPublic]:
    _visible(db, application_id, viewer)
    return [
        _document_public(d)
        for d in document_service.list_documents(db, application_id=application_id)
    ]


@router.post(
    "/{application_id}/documents",
    dependencies=[allow(only(APPLICANT))],
    status_code=201,
    response_model=DocumentPublic,
    summary="Attach a PDF or PNG (multipart: kind, file)",
)
def upload_document(
    request: Request,
    application_id: PathId,
    file: UploadFile,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    kind: Annotated[str, Form(min_length=1, max_length=64, pattern=FILLED_IN)] = "supporting",
) -> DocumentPublic:
    limit: int = request.app.state.max_document_bytes
    # One byte past the limit is enough to know the file is too large.
    content = file.file.read(limit + 1)
    _visible(db, application_id, user)
    doc = document_service.store_document(
        db,
        application_id=application_id,
        kind=kind,
        filename=file.filename or "document",
        content=content,
        actor=user,
        now=clock.now(),
        storage_dir=_storage(request),
        max_bytes=limit,
    )
    return _document_public(doc)


@router.get(
    "/{application_id}/documents/{document_id}",
    dependencies=[allow(READERS)],
    summary="Download one document",
    response_class=Response,
    responses={
        200: {
            "description": "The document's bytes, typed by their content",
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in document_service.MEDIA_TYPES
            },
        }
    },
)
def download_document(
    request: Request,
    application_id: PathId,
    document_id: PathId,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
) -> Response:
    """Within the caller's scope (404 otherwise); each download is an audit event."""
    doc, content = document_service.open_document(
        db,
        application_id=application_id,
        document_id=document_id,
        viewer=user,
        now=clock.now(),
        storage_dir=_storage(request),
    )
    return document_response(doc, content)
