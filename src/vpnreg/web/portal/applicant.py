"""Applicant pages: sign-up, new application (typed rows or CSV, documents), status, appeal,
renewal, withdrawal. Every form is a plain POST answered by a redirect; HTMX only enhances."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from vpnreg.core.ipspace import PrefixError, validate_prefix
from vpnreg.core.review import TERMINAL_STATES, Role, State
from vpnreg.registry import services
from vpnreg.registry.errors import FieldError, NotFound, RegistryError, ValidationFailed
from vpnreg.registry.services import Organisation, User, documents, queries
from vpnreg.web.policy import APPLICANT, READERS, Access, RouteKey, only
from vpnreg.web.portal.deps import (
    Config,
    DbSession,
    PortalClock,
    PortalUser,
    forbid_unless,
)
from vpnreg.web.portal.pages import local_time, render
from vpnreg.web.portal.prefix_forms import (
    PrefixEntry,
    located,
    rows_from_csv,
    rows_from_form,
    split_peers,
)
from vpnreg.web.portal.requirements import DOCUMENT_KINDS, required_documents
from vpnreg.web.portal.steps import timeline_steps

router = APIRouter(include_in_schema=False)

POLICY: dict[RouteKey, Access] = {
    ("GET", "/apply"): only(APPLICANT),
    ("POST", "/apply"): only(APPLICANT),
    ("GET", "/applications"): only(APPLICANT),
    ("GET", "/apply/rows"): only(APPLICANT),
    ("GET", "/apply/check-prefix"): only(APPLICANT),
    ("GET", "/applications/{application_id}"): READERS,
    ("POST", "/applications/{application_id}/peers"): only(APPLICANT),
    ("POST", "/applications/{application_id}/documents"): only(APPLICANT),
    ("POST", "/applications/{application_id}/{action}"): only(APPLICANT),
}
DEFAULT_ROWS = 3
MAX_ROWS = 50


def _storage(request: Request) -> object:
    return request.app.state.document_dir


def _organisation(session: DbSession, user: User) -> Organisation:
    return queries.get_organisation(session, organisation_id=user.organisation_id or 0, viewer=user)


def _form_state(isp_id: int | None, entries: list[tuple[str, str]], rows: int) -> dict[str, object]:
    padded = entries + [("", "")] * max(0, rows - len(entries))
    return {"isp_id": isp_id, "rows": [{"prefix": p, "peers": q} for p, q in padded]}


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
            "max_document_mb": documents.MAX_DOCUMENT_BYTES // (1024 * 1024),
        },
        status_code=status_code,
    )


@router.get("/apply", response_class=HTMLResponse, name="portal.apply_form")
def apply_form(request: Request, session: DbSession, user: PortalUser, rows: int = 0) -> Response:
    rows = min(max(rows, DEFAULT_ROWS), MAX_ROWS)
    return _apply_page(request, session, user, form=_form_state(None, [], rows), errors=[])


@router.get("/apply/rows", response_class=HTMLResponse, name="portal.apply_rows")
def apply_rows(request: Request, user: PortalUser, shown: int = 0) -> Response:
    """HTMX: two more empty prefix rows after the `shown` ones, and the button, renumbered."""
    forbid_unless(user, Role.APPLICANT)
    shown = min(max(shown, 0), MAX_ROWS)
    count = min(2, MAX_ROWS - shown)
    rows = [{"prefix": "", "peers": ""}] * count
    return render(request, "_apply_rows_fragment.html", {"rows": rows, "first": shown})


@router.get("/apply/check-prefix", response_class=HTMLResponse, name="portal.check_prefix")
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


async def _file_bytes(value: object) -> tuple[str, bytes] | None:
    if isinstance(value, UploadFile) and value.filename:
        content = await value.read(documents.MAX_DOCUMENT_BYTES + 1)
        return value.filename, content
    return None


@router.post("/apply", response_class=HTMLResponse, name="portal.apply")
async def apply(
    request: Request, session: DbSession, user: PortalUser, clock: PortalClock, config: Config
) -> Response:
    form = await request.form()
    try:
        forbid_unless(user, Role.APPLICANT)
        prefixes = [str(v) for v in form.getlist("prefix")]
        peers = [str(v) for v in form.getlist("peers")]
        typed = [(p, q) for p, q in zip(prefixes, peers + [""] * len(prefixes), strict=False)]
        isp_text = str(form.get("isp_id") or "")
        isp_id = int(isp_text) if isp_text.isdigit() else None
        more = str(form.get("more_rows") or "")
        if more.isdigit():
            rows = min(max(int(more), DEFAULT_ROWS), MAX_ROWS)
            state = _form_state(isp_id, typed, rows)
            return _apply_page(request, session, user, form=state, errors=[])

        errors: list[FieldError] = []
        entries: list[PrefixEntry] = rows_from_form(prefixes, peers)
        upload = await _file_bytes(form.get("prefixes_csv"))
        if upload is not None:
            csv_entries, csv_errors = rows_from_csv(upload[1])
            entries += csv_entries
            errors += csv_errors
        if isp_id is None:
            errors.append(FieldError("ISP", "required", "choose your internet service provider"))
        org = _organisation(session, user)
        files: list[tuple[str, str, bytes]] = []
        for doc in required_documents(org.category):
            got = await _file_bytes(form.get(f"doc_{doc.kind}"))
            problem = documents_problem(doc.label, got)
            if problem is not None:
                errors.append(problem)
            elif got is not None:
                files.append((doc.kind, got[0], got[1]))
        state = _form_state(isp_id, [(e.prefix, " ".join(e.peers)) for e in entries], DEFAULT_ROWS)
        if errors or not entries:
            if not entries:
                errors.append(FieldError("prefixes", "required", "enter at least one prefix"))
            return _apply_page(request, session, user, form=state, errors=errors, status_code=422)
        assert isp_id is not None
        try:
            app = services.create_application(
                session,
                organisation_id=org.id,
                isp_id=isp_id,
                prefixes=[(e.prefix, e.peers) for e in entries],
                actor=user,
                now=clock.now(),
                config=config,
            )
        except ValidationFailed as exc:
            bad = located(exc.errors, entries)
            return _apply_page(request, session, user, form=state, errors=bad, status_code=422)
        except NotFound as exc:
            bad = [FieldError("ISP", "not_found", str(exc))]
            return _apply_page(request, session, user, form=state, errors=bad, status_code=422)
        for kind, filename, content in files:
            documents.store_document(
                session,
                application_id=app.id,
                kind=kind,
                filename=filename,
                content=content,
                actor=user,
                now=clock.now(),
                storage_dir=request.app.state.document_dir,
            )
        done = "created"
        if form.get("intent") == "submit":
            services.submit(
                session,
                application_id=app.id,
                actor=user,
                now=clock.now(),
                config=config,
                expected_version=app.version,
            )
            done = "submitted"
        return RedirectResponse(f"/applications/{app.id}?done={done}", status_code=303)

    finally:
        await form.close()


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


@router.get("/applications", response_class=HTMLResponse, name="portal.applications")
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


def applicant_actions(state: str, role: str) -> list[str]:
    if role != Role.APPLICANT:
        return []
    actions: list[str] = []
    if state == State.DRAFT:
        actions += ["submit"]
    if state in (State.ACTIVE, State.EXPIRING):
        actions += ["renew"]
    if state == State.REJECTED:
        actions += ["appeal"]
    if state in (
        State.DRAFT,
        State.SUBMITTED,
        State.ISP_VERIFIED,
        State.SECTOR_ENDORSED,
        State.REJECTED,
    ):
        actions += ["withdraw", "upload"]
    return actions


def application_page(
    request: Request,
    session: DbSession,
    user: PortalUser,
    config: Config,
    application_id: int,
    *,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    app = queries.visible_application(session, application_id=application_id, viewer=user)
    return render(
        request,
        "application.html",
        {
            "app": app,
            "valid_from_local": local_time(app.valid_from, config.tz) if app.valid_from else "",
            "steps": timeline_steps(session, application_id=app.id, tz=config.tz),
            "actions": applicant_actions(app.state, user.role),
            "documents": documents.list_documents(session, application_id=app.id),
            "document_kinds": DOCUMENT_KINDS,
            "amendments": queries.open_amendments(session, viewer=user, application_id=app.id),
            "can_amend": user.role == Role.APPLICANT and State(app.state) not in TERMINAL_STATES,
            "errors": errors or [],
        },
        status_code=status_code,
    )


@router.get(
    "/applications/{application_id}", response_class=HTMLResponse, name="portal.application"
)
def application_detail(
    request: Request, session: DbSession, user: PortalUser, config: Config, application_id: int
) -> Response:
    return application_page(request, session, user, config, application_id)


@router.post("/applications/{application_id}/documents", name="portal.upload_document")
async def upload_document(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: int,
) -> Response:
    form = await request.form()
    try:
        got = await _file_bytes(form.get("file"))
        try:
            queries.visible_application(session, application_id=application_id, viewer=user)
            if got is None:
                raise ValidationFailed([FieldError("file", "required", "choose a file")])
            documents.store_document(
                session,
                application_id=application_id,
                kind=str(form.get("kind") or ""),
                filename=got[0],
                content=got[1],
                actor=user,
                now=clock.now(),
                storage_dir=request.app.state.document_dir,
            )
        except RegistryError as exc:
            return _after(request, session, user, config, application_id, exc)
        return RedirectResponse(f"/applications/{application_id}?done=uploaded", status_code=303)

    finally:
        await form.close()


Version = Annotated[int, Form()]


def _after(
    request: Request,
    session: DbSession,
    user: PortalUser,
    config: Config,
    application_id: int,
    exc: RegistryError,
) -> HTMLResponse:
    errors = (
        exc.errors if isinstance(exc, ValidationFailed) else [FieldError("", exc.code, str(exc))]
    )
    status = 404 if isinstance(exc, NotFound) else 409
    status = 422 if isinstance(exc, ValidationFailed) else status
    status = 403 if exc.code == "forbidden" else status
    return application_page(
        request, session, user, config, application_id, errors=errors, status_code=status
    )


@router.post("/applications/{application_id}/peers", name="portal.amend_peers")
def amend_peers(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: int,
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
        return _after(request, session, user, config, application_id, exc)
    return RedirectResponse(
        f"/applications/{application_id}?done=amendment_requested", status_code=303
    )


@router.post("/applications/{application_id}/{action}", name="portal.applicant_action")
def applicant_action(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: int,
    action: str,
    version: Version,
    text: Annotated[str, Form()] = "",
) -> Response:
    common = {
        "application_id": application_id,
        "actor": user,
        "now": clock.now(),
        "config": config,
        "expected_version": version,
    }
    try:
        queries.visible_application(session, application_id=application_id, viewer=user)
        if action == "submit":
            services.submit(session, **common)  # type: ignore[arg-type]
            target, done = application_id, "submitted"
        elif action == "withdraw":
            services.withdraw(session, **common)  # type: ignore[arg-type]
            target, done = application_id, "withdrawn"
        elif action == "appeal":
            services.appeal(session, text=text, **common)  # type: ignore[arg-type]
            target, done = application_id, "appealed"
        elif action == "renew":
            new = services.renew(session, **common)  # type: ignore[arg-type]
            target, done = new.id, "renewed"
        else:
            raise NotFound("action", action)
    except RegistryError as exc:
        return _after(request, session, user, config, application_id, exc)
    return RedirectResponse(f"/applications/{target}?done={done}", status_code=303)


__all__ = ["POLICY", "router"]
