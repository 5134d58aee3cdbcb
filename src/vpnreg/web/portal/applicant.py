"""Applicant pages: sign-up, new application (typed rows or CSV, documents), status, appeal,
renewal, withdrawal. Every form is a plain POST answered by a redirect; HTMX only enhances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vpnreg.core.ipspace import PrefixError, validate_prefix
from vpnreg.core.protocols import MODE_PROTOCOLS
from vpnreg.core.review import Role, State
from vpnreg.registry import services
from vpnreg.registry.errors import FieldError, NotFound, RegistryError, ValidationFailed
from vpnreg.registry.services import documents, queries
from vpnreg.registry.services.gateway_reports import registration_flows
from vpnreg.registry.views import OrganisationView, UserView
from vpnreg.web.bounds import FormVersion, PathId, parse_id
from vpnreg.web.documents import document_response
from vpnreg.web.policy import APPLICANT, READERS, allow, only
from vpnreg.web.portal.banners import APPLICANT_DONE, decision_banner, validity_rule
from vpnreg.web.portal.deps import (
    Config,
    DbSession,
    PortalClock,
    PortalUser,
    forbid_unless,
)
from vpnreg.web.portal.findings import prefix_findings
from vpnreg.web.portal.pages import local_time, render
from vpnreg.web.portal.prefix_forms import (
    PrefixEntry,
    located,
    rows_from_csv,
    rows_from_form,
    split_peers,
)
from vpnreg.web.portal.requirements import KIND_LABELS, document_kinds, required_documents
from vpnreg.web.portal.steps import suspension_step, timeline_steps
from vpnreg.web.posted import Posted, PostedForm

router = APIRouter(include_in_schema=False)

DEFAULT_ROWS = 3
MAX_ROWS = 50


def _storage(request: Request) -> object:
    return request.app.state.document_dir


def _organisation(session: DbSession, user: UserView) -> OrganisationView:
    return queries.get_organisation(session, organisation_id=user.organisation_id or 0, viewer=user)


#: The VPN protocols an application may name, in their canonical order.
PROTOCOL_CHOICES = tuple(p.value for p in MODE_PROTOCOLS)


@dataclass(frozen=True)
class _Scope:
    """The form's choice of what the registration covers: its prefixes (typed or a CSV), or
    "my address changes" (the ISP's account id), and the VPN protocols ticked."""

    by_subscriber: bool = False
    subscriber_id: str = ""
    protocols: tuple[str, ...] = ()

    @classmethod
    def of(cls, form: PostedForm) -> _Scope:
        return cls(
            by_subscriber=form.get("bound_to") == "subscriber",
            subscriber_id=form.get("subscriber_id").strip()[:100],
            protocols=tuple(p for p in form.getlist("protocols") if p in PROTOCOL_CHOICES),
        )


def _form_state(
    isp_id: int | None, entries: list[tuple[str, str]], rows: int, scope: _Scope = _Scope()
) -> dict[str, object]:
    padded = entries + [("", "")] * max(0, rows - len(entries))
    return {
        "isp_id": isp_id,
        "rows": [{"prefix": p, "peers": q} for p, q in padded],
        "bound_to": "subscriber" if scope.by_subscriber else "prefixes",
        "subscriber_id": scope.subscriber_id,
        "protocols": scope.protocols,
    }


def _apply_page(
    request: Request,
    session: DbSession,
    user: PortalUser,
    *,
    form: dict[str, object],
    errors: list[FieldError],
    status_code: int = 200,
) -> HTMLResponse:
    forbid_unless(user, Role.APPLICANT)
    org = _organisation(session, user)
    return render(
        request,
        "apply.html",
        {
            "organisation": org,
            "isps": queries.list_isps(session),
            "form": form,
            "errors": errors,
            "required_documents": required_documents(org.category),
            "protocol_choices": PROTOCOL_CHOICES,
            "max_document_mb": documents.MAX_DOCUMENT_BYTES // (1024 * 1024),
        },
        status_code=status_code,
    )


@router.get(
    "/apply",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.apply_form",
)
def apply_form(
    request: Request,
    session: DbSession,
    user: PortalUser,
    rows: Annotated[int, Query(ge=0, le=1000)] = 0,
) -> Response:
    rows = min(max(rows, DEFAULT_ROWS), MAX_ROWS)
    return _apply_page(request, session, user, form=_form_state(None, [], rows), errors=[])


@router.get(
    "/apply/rows",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.apply_rows",
)
def apply_rows(
    request: Request, user: PortalUser, shown: Annotated[int, Query(ge=0, le=1000)] = 0
) -> Response:
    """HTMX: two more empty prefix rows after the `shown` ones, and the button, renumbered."""
    forbid_unless(user, Role.APPLICANT)
    shown = min(max(shown, 0), MAX_ROWS)
    count = min(2, MAX_ROWS - shown)
    rows = [{"prefix": "", "peers": ""}] * count
    return render(request, "_apply_rows_fragment.html", {"rows": rows, "first": shown})


@router.get(
    "/apply/check-prefix",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.check_prefix",
)
def check_prefix(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    prefix: str = "",
) -> Response:
    """HTMX: why a typed prefix would be refused (the same policy the registry applies), or
    that it is valid and whether registered space or a pending claim overlaps it."""
    forbid_unless(user, Role.APPLICANT)
    text = prefix.strip()[:100]
    ok, message = True, ""
    if text:
        try:
            network = validate_prefix(text, config.prefix_policy)
        except PrefixError as exc:
            ok, message = False, exc.message
        else:
            hits = queries.overlapping_claims(session, prefix_texts=[str(network)], now=clock.now())
            taken = hits[str(network)]
            if taken:
                ok = False
                message = "overlaps " + ", ".join(sorted({o.other_prefix for o in taken}))
                message += " already registered or in review"
            else:
                message = "valid public prefix"
    return render(request, "_prefix_check.html", {"prefix": text, "ok": ok, "text": message})


@router.post(
    "/apply",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.apply",
)
def apply(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    form: Posted,
) -> Response:
    forbid_unless(user, Role.APPLICANT)
    prefixes = form.getlist("prefix")
    peers = form.getlist("peers")
    typed = [(p, q) for p, q in zip(prefixes, peers + [""] * len(prefixes), strict=False)]
    isp_text = form.get("isp_id")
    isp_id = parse_id(isp_text)
    # "My address changes": the registration follows the ISP's account id, no prefixes.
    scope = _Scope.of(form)
    by_subscriber = scope.by_subscriber
    more = form.get("more_rows")
    if more.isdigit():
        rows = min(max(int(more[:3]), DEFAULT_ROWS), MAX_ROWS)
        state = _form_state(isp_id, typed, rows, scope)
        return _apply_page(request, session, user, form=state, errors=[])

    errors: list[FieldError] = []
    entries: list[PrefixEntry] = [] if by_subscriber else rows_from_form(prefixes, peers)
    upload = None if by_subscriber else form.file("prefixes_csv")
    if upload is not None:
        csv_entries, csv_errors = rows_from_csv(upload[1])
        entries += csv_entries
        errors += csv_errors
    if by_subscriber and not scope.subscriber_id:
        errors.append(
            FieldError("subscriber_id", "required", "enter the account id your ISP gave you")
        )
    if isp_id is None:
        errors.append(FieldError("ISP", "required", "choose your internet service provider"))
    org = _organisation(session, user)
    files: list[services.DocumentUpload] = []
    for doc in required_documents(org.category):
        got = form.file(f"doc_{doc.kind}")
        problem = documents_problem(doc.label, got)
        if problem is not None:
            errors.append(problem)
        elif got is not None:
            files.append(services.DocumentUpload(doc.kind, got[0], got[1]))
    state = _form_state(
        isp_id,
        [(e.prefix, " ".join(e.peers)) for e in entries],
        DEFAULT_ROWS,
        scope,
    )
    if errors or not (entries or by_subscriber):
        if not (entries or by_subscriber):
            errors.append(FieldError("prefixes", "required", "enter at least one prefix"))
        return _apply_page(request, session, user, form=state, errors=errors, status_code=422)
    assert isp_id is not None
    intent = form.get("intent")
    # "submit" creates and submits at once (kept for scripts); the form's own button continues
    # to the check-your-answers page, which submits.
    submit = intent == "submit"
    try:
        app = services.apply_for_registration(
            session,
            organisation_id=org.id,
            isp_id=isp_id,
            prefixes=[(e.prefix, e.peers) for e in entries],
            subscriber_id=scope.subscriber_id if by_subscriber else None,
            protocols=scope.protocols,
            documents=files,
            submit=submit,
            actor=user,
            now=clock.now(),
            config=config,
            storage_dir=request.app.state.document_dir,
        )
    except ValidationFailed as exc:
        bad = located(exc.errors, entries)
        return _apply_page(request, session, user, form=state, errors=bad, status_code=422)
    except NotFound as exc:
        bad = [FieldError("ISP", "not_found", str(exc))]
        return _apply_page(request, session, user, form=state, errors=bad, status_code=422)
    except RegistryError as exc:
        bad = [FieldError("", exc.code, str(exc))]
        return _apply_page(request, session, user, form=state, errors=bad, status_code=exc.status)
    if submit:
        return RedirectResponse(f"/applications/{app.id}?done=submitted", status_code=303)
    if intent == "draft":
        return RedirectResponse(f"/applications/{app.id}?done=created", status_code=303)
    return RedirectResponse(f"/applications/{app.id}/check", status_code=303)


def documents_problem(label: str, got: tuple[str, bytes] | None) -> FieldError | None:
    """Checked before the application is created, so a bad file never leaves a half-made draft."""
    if got is None:
        return FieldError(label, "required", "this document is required for your category")
    name, content = got
    if len(content) > documents.MAX_DOCUMENT_BYTES:
        return FieldError(label, "too_large", f"{name} is larger than the limit", name)
    if documents.sniff_media_type(content) is None:
        return FieldError(label, "unsupported_type", f"{name} is not a PDF or PNG file", name)
    return None


@router.get(
    "/applications",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.applications",
)
def my_applications(
    request: Request, session: DbSession, user: PortalUser, config: Config
) -> Response:
    forbid_unless(user, Role.APPLICANT)
    org = _organisation(session, user)
    page = queries.list_applications(session, viewer=user, limit=200)
    rows = [
        {
            "id": a.id,
            "tracking_number": a.tracking_number,
            "state": a.state,
            "prefixes": a.prefixes,
            "valid_until": a.valid_until,
            "updated_local": local_time(a.updated_at, config.tz),
        }
        for a in page.items
    ]
    return render(request, "applications.html", {"organisation": org, "applications": rows})


def application_page(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    *,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    app = queries.visible_application(session, application_id=application_id, viewer=user)
    # The request's clock, as the review page passes it: a suspended registration whose validity
    # has ended offers no step that take_step would refuse at this moment.
    actions = services.available_actions(session, app, user, config=config, now=clock.now())
    step = APPLICANT_DONE.get(request.query_params.get("done", ""))
    banner = decision_banner(app, step) if step is not None else None
    steps = timeline_steps(session, application_id=app.id, tz=config.tz)
    return render(
        request,
        "application.html",
        {
            **({"flash": banner} if banner else {}),
            "validity_rule": validity_rule(app),
            "app": app,
            "valid_from_local": local_time(app.valid_from, config.tz) if app.valid_from else "",
            "steps": steps,
            "suspension": suspension_step(app, steps),
            "actions": actions,
            "reviewable": user.role != Role.APPLICANT and bool(actions),
            "documents": documents.list_documents(session, application_id=app.id),
            "document_kinds": document_kinds(app.category).offered,
            "kind_labels": KIND_LABELS,
            "amendments": queries.open_amendments(session, viewer=user, application_id=app.id),
            "can_amend": services.AMEND_PEERS in actions,
            # the application's id is its registration id in the feed and in gateway reports
            "gateway_flows": registration_flows(
                session, registration_id=app.id, now=request.app.state.clock.now()
            ),
            "protocol_amendment": services.pending_protocol_amendment(
                session, application_id=app.id
            ),
            "can_amend_protocols": services.AMEND_PROTOCOLS in actions,
            "protocol_choices": PROTOCOL_CHOICES,
            "errors": errors or [],
        },
        status_code=status_code,
    )


@router.get(
    "/applications/{application_id}",
    dependencies=[allow(READERS)],
    response_class=HTMLResponse,
    name="portal.application",
)
def application_detail(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
) -> Response:
    return application_page(request, session, user, clock, config, application_id)


@router.post(
    "/applications/{application_id}/documents",
    dependencies=[allow(only(APPLICANT))],
    name="portal.upload_document",
)
def upload_document(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    form: Posted,
) -> Response:
    got = form.file("file")
    try:
        app = queries.visible_application(session, application_id=application_id, viewer=user)
        offered = {k.kind for k in document_kinds(app.category).offered}
        problems = []
        if form.get("kind") not in offered:
            problems.append(FieldError("kind", "invalid", "choose what the document is"))
        if got is None:
            problems.append(FieldError("file", "required", "choose a file"))
        if problems or got is None:
            raise ValidationFailed(problems)
        documents.store_document(
            session,
            application_id=application_id,
            kind=form.get("kind"),
            filename=got[0],
            content=got[1],
            actor=user,
            now=clock.now(),
            storage_dir=request.app.state.document_dir,
        )
    except RegistryError as exc:
        return _after(request, session, user, clock, config, application_id, exc)
    return RedirectResponse(f"/applications/{application_id}?done=uploaded", status_code=303)


@router.get(
    "/applications/{application_id}/documents/{document_id}",
    dependencies=[allow(READERS)],
    name="portal.download_document",
)
def download_document(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    application_id: PathId,
    document_id: PathId,
) -> Response:
    """Reviewers and the applicant open a document within their scope; each download is audited."""
    doc, content = documents.open_document(
        session,
        application_id=application_id,
        document_id=document_id,
        viewer=user,
        now=clock.now(),
        storage_dir=request.app.state.document_dir,
    )
    return document_response(doc, content)


Version = FormVersion


def _after(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    exc: RegistryError,
) -> HTMLResponse:
    return application_page(
        request,
        session,
        user,
        clock,
        config,
        application_id,
        errors=exc.field_errors(),
        status_code=exc.status,
    )


@router.post(
    "/applications/{application_id}/peers",
    dependencies=[allow(only(APPLICANT))],
    name="portal.amend_peers",
)
def amend_peers(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    version: Version,
    prefix: Annotated[str, Form()] = "",
    peers: Annotated[str, Form()] = "",
) -> Response:
    """Ask for a prefix's peers to change; the old ones stay in force until a regulator
    approves (registry.services.amend_peers). Empty peers: the prefix may talk to anyone."""
    try:
        forbid_unless(user, Role.APPLICANT)
        queries.visible_application(session, application_id=application_id, viewer=user)
        services.amend_peers(
            session,
            application_id=application_id,
            prefix=prefix,
            peers=list(split_peers(peers)),
            actor=user,
            now=clock.now(),
            config=config,
            expected_version=version,
        )
    except RegistryError as exc:
        return _after(request, session, user, clock, config, application_id, exc)
    return RedirectResponse(
        f"/applications/{application_id}?done=amendment_requested", status_code=303
    )


@router.post(
    "/applications/{application_id}/protocols",
    dependencies=[allow(only(APPLICANT))],
    name="portal.amend_protocols",
)
def amend_protocols(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    version: Version,
    form: Posted,
) -> Response:
    """Ask for the VPN protocol list to change; the old list stays in force until a regulator
    approves (registry.services.amend_protocols). None ticked: any VPN protocol."""
    try:
        forbid_unless(user, Role.APPLICANT)
        queries.visible_application(session, application_id=application_id, viewer=user)
        services.amend_protocols(
            session,
            application_id=application_id,
            protocols=form.getlist("protocols"),
            actor=user,
            now=clock.now(),
            expected_version=version,
        )
    except RegistryError as exc:
        return _after(request, session, user, clock, config, application_id, exc)
    return RedirectResponse(
        f"/applications/{application_id}?done=protocols_requested", status_code=303
    )


def _check_page(
    request: Request,
    session: DbSession,
    user: UserView,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    *,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> Response:
    forbid_unless(user, Role.APPLICANT)
    app = queries.visible_application(session, application_id=application_id, viewer=user)
    if app.state != State.DRAFT:
        return RedirectResponse(f"/applications/{app.id}", status_code=303)
    findings = prefix_findings(session, app, now=clock.now(), config=config, viewer=user)
    return render(
        request,
        "check.html",
        {
            "app": app,
            "findings": findings,
            "blocking": [f for f in findings if f.blocks],
            "needs_endorsement": config.needs_endorsement(app.category),
            "documents": documents.list_documents(session, application_id=app.id),
            "kind_labels": KIND_LABELS,
            "errors": errors or [],
        },
        status_code=status_code,
    )


@router.get(
    "/applications/{application_id}/check",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.check_answers",
)
def check_answers(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
) -> Response:
    """Check your answers: every prefix with its findings, and the documents, before submitting.
    An overlap with registered space is shown as the reason the application cannot be sent."""
    return _check_page(request, session, user, clock, config, application_id)


@router.post(
    "/applications/{application_id}/check",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.submit_checked",
)
def submit_checked(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    version: Version,
) -> Response:
    """Submit from the check page; a refusal (an overlap, a stale page) is shown on that page."""
    try:
        queries.visible_application(session, application_id=application_id, viewer=user)
        step = services.StepRequest(
            action="submit", application_id=application_id, actor=user, expected_version=version
        )
        services.take_step(session, step, now=clock.now(), config=config)
    except RegistryError as exc:
        return _check_page(
            request,
            session,
            user,
            clock,
            config,
            application_id,
            errors=exc.field_errors(),
            status_code=exc.status,
        )
    return RedirectResponse(f"/applications/{application_id}?done=submitted", status_code=303)


#: The steps an applicant takes from an application's page, and the notice each leaves.
APPLICANT_STEPS = {
    "submit": "submitted",
    "withdraw": "withdrawn",
    "appeal": "appealed",
    services.RENEW: "renewed",
}


@router.post(
    "/applications/{application_id}/{action}",
    dependencies=[allow(only(APPLICANT))],
    name="portal.applicant_action",
)
def applicant_action(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    action: str,
    version: Version,
    text: Annotated[str, Form()] = "",
) -> Response:
    try:
        queries.visible_application(session, application_id=application_id, viewer=user)
        if action not in APPLICANT_STEPS:
            raise NotFound("action", action)
        step = services.StepRequest(
            action=action,
            application_id=application_id,
            actor=user,
            expected_version=version,
            arguments=services.arguments_for(action, {"text": text}),
        )
        app = services.take_step(session, step, now=clock.now(), config=config)
    except RegistryError as exc:
        return _after(request, session, user, clock, config, application_id, exc)
    return RedirectResponse(
        f"/applications/{app.id}?done={APPLICANT_STEPS[action]}", status_code=303
    )


__all__ = ["router"]
