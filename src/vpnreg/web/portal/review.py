"""Reviewer queues for the ISP, the sector body and the regulator: filters, ages, findings,
decisions one at a time or in bulk (after a confirmation page), reasons where the rules ask.

Each decision calls the same registry service as the CLI with the version the reviewer saw as
expected_version, so acting on a stale page gives a clear error instead of a silent overwrite.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vpnreg.core.review import (
    ACTION_ARGUMENTS,
    ATTESTED_STATES,
    Action,
    Role,
    State,
    argument_problems,
)
from vpnreg.registry import services
from vpnreg.registry.errors import FieldError, NotFound, RegistryError, ValidationFailed
from vpnreg.registry.services import ServiceConfig, documents, queries
from vpnreg.registry.services.unit_of_work import DbSession as Session
from vpnreg.registry.views import ApplicationView, UserView
from vpnreg.web.bounds import PathId, parse_id
from vpnreg.web.policy import ISP, REGULATOR, SECTOR_BODY, allow, only
from vpnreg.web.portal.banners import decision_banner, result_line
from vpnreg.web.portal.deps import (
    Config,
    DbSession,
    PortalClock,
    PortalUser,
    forbid_unless,
)
from vpnreg.web.portal.findings import prefix_findings
from vpnreg.web.portal.pages import age_text, local_time, render
from vpnreg.web.portal.requirements import KIND_LABELS
from vpnreg.web.portal.steps import timeline_steps
from vpnreg.web.posted import Posted

router = APIRouter(include_in_schema=False)
REVIEWERS = only(ISP, SECTOR_BODY, REGULATOR)
LABELS = {
    "verify": "Verify (prefixes are this subscriber's)",
    "endorse": "Endorse",
    "approve": "Approve",
    "reattest": "Re-attest (the line is this subscriber's again)",
    "reject": "Reject",
    "revoke": "Revoke",
    "uphold": "Uphold rejection",
    "overturn": "Overturn rejection",
    "withdraw_attestation": "Withdraw attestation",
}
#: Decisions that take something away: shown as dangerous buttons.
DANGEROUS = frozenset({"reject", "revoke", "uphold", "withdraw_attestation"})
#: Decisions that take a written reason (the core table says which, and which must have one).
NEEDS_REASON = frozenset(a for a in LABELS if ACTION_ARGUMENTS.get(Action(a)))
#: The registry's categories (vpnreg.registry.models.Category, which the web may not import).
CATEGORIES = ("software_house", "call_centre", "freelancer", "bank", "foreign_mission", "other")
REASON_CODES = ("not_subscriber", "incomplete_documents", "not_eligible", "policy", "other")


#: The registrations an ISP has attested, which it finds by searching its queue (a tracking
#: number or a prefix) to withdraw its attestation: too many to list unasked.
ATTESTED = tuple(sorted(s.value for s in ATTESTED_STATES))


ISP_HINT = (
    "Registrations whose attestation you withdrew wait here for your re-attestation. To "
    "withdraw your attestation of a registration (line cancelled, address reassigned), search "
    "for its tracking number or prefix."
)


def queue_states(role: str, *, searching: bool = False) -> tuple[str, ...]:
    """What waits for each reviewer; further narrowed per category by `waits_for`. An ISP's
    suspended registrations wait for its re-attestation; searching, it also finds the
    registrations it attested."""
    if role == Role.ISP:
        return (State.SUBMITTED.value, State.SUSPENDED.value) + (ATTESTED if searching else ())
    if role == Role.SECTOR_BODY:
        return (State.ISP_VERIFIED.value,)
    if role == Role.REGULATOR:
        return (State.ISP_VERIFIED.value, State.SECTOR_ENDORSED.value, State.APPEALED.value)
    return ()


def waits_for(app: ApplicationView, role: str, config: ServiceConfig) -> bool:
    """An ISP-verified application waits for the sector body if its category needs endorsement,
    and for the regulator otherwise."""
    if app.state == State.ISP_VERIFIED:
        endorsed = config.needs_endorsement(app.category)
        return endorsed if role == Role.SECTOR_BODY else not endorsed
    return True


def decisions(
    session: Session, app: ApplicationView, user: UserView, config: ServiceConfig, now: dt.datetime
) -> list[str]:
    """The decisions `user` gets buttons for on `app`: exactly the reviewer steps the registry
    would accept now (services.available_actions), positive ones first."""
    offered = services.available_actions(session, app, user, config=config, now=now)
    return [a for a in LABELS if a in offered]


@dataclass(frozen=True)
class QueueItem:
    id: int
    version: int
    tracking_number: str
    organisation: str
    category: str
    state: str
    prefixes: str
    age: str
    waiting_since: dt.datetime
    decisions: tuple[str, ...]


def _queue(
    session: Session,
    user: UserView,
    config: ServiceConfig,
    now: dt.datetime,
    *,
    category: str,
    search: str,
) -> list[QueueItem]:
    items: list[QueueItem] = []
    for state in queue_states(user.role, searching=bool(search)):
        page = queries.list_applications(
            session,
            viewer=user,
            state=state,
            category=category or None,
            search=search or None,
            limit=queries.MAX_PAGE,
        )
        for app in page.items:
            if not waits_for(app, user.role, config):
                continue
            items.append(
                QueueItem(
                    id=app.id,
                    version=app.version,
                    tracking_number=app.tracking_number or str(app.id),
                    organisation=app.organisation_name,
                    category=app.category,
                    state=app.state,
                    prefixes=(
                        f"subscriber {app.subscriber_id}"
                        if app.subscriber_bound
                        else ", ".join(p.prefix for p in app.prefixes)
                    ),
                    age=age_text(app.updated_at, now),
                    waiting_since=app.updated_at,
                    decisions=tuple(decisions(session, app, user, config, now)),
                )
            )
    # Oldest first: the longest wait is the most urgent.
    return sorted(items, key=lambda i: i.waiting_since)


@router.get(
    "/queue", dependencies=[allow(REVIEWERS)], response_class=HTMLResponse, name="portal.queue"
)
def queue_page(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    category: str = "",
    q: str = "",
    application: str = "",
    step: str = "",
) -> Response:
    forbid_unless(user, Role.ISP, Role.SECTOR_BODY, Role.REGULATOR)
    items = _queue(session, user, config, clock.now(), category=category, search=q.strip())
    banner = _decided_banner(session, user, application, step)
    offered = {d for i in items for d in i.decisions}
    # The positive decision first, so the default is never a rejection.
    bulk = [a for a in LABELS if a in offered]
    return render(
        request,
        "queue.html",
        {
            **({"flash": banner} if banner else {}),
            "items": items,
            "categories": CATEGORIES,
            "category": category,
            "q": q,
            "bulk_actions": [(a, LABELS[a]) for a in bulk],
            "searching": bool(q.strip()),
            "find_hint": ISP_HINT if user.role == Role.ISP else "",
            "reason_codes": REASON_CODES,
            "role_label": user.role.replace("_", " "),
            "amendments": (
                queries.open_amendments(session, viewer=user) if user.role == Role.REGULATOR else []
            ),
        },
    )


def _decided_banner(session: Session, user: UserView, application: str, step: str) -> str | None:
    """After a decision: what was decided on which application, read back from the registry."""
    app_id = parse_id(application)
    if app_id is None:
        return None
    try:
        app = queries.visible_application(session, application_id=app_id, viewer=user)
    except NotFound:
        return None
    return decision_banner(app, step)


def _item_page(
    request: Request,
    session: Session,
    user: UserView,
    config: ServiceConfig,
    now: dt.datetime,
    application_id: PathId,
    *,
    errors: list[FieldError] | None = None,
    failed_action: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """The review page; after a refused decision, its errors link to that decision's inputs."""
    app = queries.visible_application(session, application_id=application_id, viewer=user)
    return render(
        request,
        "review.html",
        {
            "app": app,
            "age": age_text(app.updated_at, now),
            "findings": prefix_findings(session, app, now=now, config=config, viewer=user),
            "steps": timeline_steps(session, application_id=app.id, tz=config.tz),
            "decisions": [
                (d, LABELS[d], d in NEEDS_REASON)
                for d in decisions(session, app, user, config, now)
            ],
            "appeals": queries.application_appeals(session, application_id=app.id),
            "documents": documents.list_documents(session, application_id=app.id),
            "kind_labels": KIND_LABELS,
            "reason_codes": REASON_CODES,
            "dangerous": DANGEROUS,
            "errors": errors or [],
            "error_ids": (
                {"reason": f"reason-{failed_action}", "reason_code": f"code-{failed_action}"}
                if failed_action in LABELS
                else {}
            ),
            "valid_from_local": local_time(app.valid_from, config.tz) if app.valid_from else "",
            "amendments": queries.open_amendments(session, viewer=user, application_id=app.id),
            "may_approve_amendments": user.role == Role.REGULATOR,
            "protocol_amendment": services.pending_protocol_amendment(
                session, application_id=app.id
            ),
        },
        status_code=status_code,
    )


@router.get(
    "/queue/{application_id}",
    dependencies=[allow(REVIEWERS)],
    response_class=HTMLResponse,
    name="portal.queue_item",
)
def queue_item(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
) -> Response:
    forbid_unless(user, Role.ISP, Role.SECTOR_BODY, Role.REGULATOR)
    return _item_page(request, session, user, config, clock.now(), application_id)


def decide(
    session: Session,
    *,
    action: str,
    application_id: PathId,
    version: int,
    user: UserView,
    now: dt.datetime,
    config: ServiceConfig,
    reason_code: str,
    reason: str,
) -> ApplicationView:
    """One decision through the registry's one step entry; only reviewers' decisions."""
    if action not in LABELS:
        raise NotFound("decision", action)
    step = services.StepRequest(
        action=action,
        application_id=application_id,
        actor=user,
        expected_version=version,
        arguments=services.arguments_for(action, {"reason_code": reason_code, "reason": reason}),
    )
    return services.take_step(session, step, now=now, config=config)


@router.post(
    "/queue/bulk",
    dependencies=[allow(REVIEWERS)],
    response_class=HTMLResponse,
    name="portal.queue_bulk",
)
def queue_bulk(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    form: Posted,
) -> Response:
    """First post: a confirmation page listing what will happen. Second (confirm=yes): do it,
    item by item, and show what happened to each."""
    forbid_unless(user, Role.ISP, Role.SECTOR_BODY, Role.REGULATOR)
    action = form.get("action")
    reason_code = form.get("reason_code")
    reason = form.get("reason")
    picked: list[tuple[int, int]] = []
    for value in form.getlist("item"):
        id_text, _, version_text = value.partition(":")
        app_id, app_version = parse_id(id_text), parse_id(version_text)
        if app_id is not None and app_version is not None:
            picked.append((app_id, app_version))
    problems: list[FieldError] = []
    if action not in LABELS:
        problems.append(FieldError("decision", "required", "choose a decision"))
    if not picked:
        problems.append(FieldError("applications", "required", "tick at least one application"))
    if action in LABELS:
        given = services.arguments_for(action, {"reason_code": reason_code, "reason": reason})
        problems += [
            FieldError(name, "required", message)
            for name, message in argument_problems(Action(action), given)
        ]
    if problems:
        return render(
            request,
            "error.html",
            {"title": "Nothing decided", "message": "", "errors": problems, "back": "/queue"},
            status_code=422,
        )
    apps = [queries.visible_application(session, application_id=i, viewer=user) for i, _ in picked]
    if form.get("confirm") != "yes":
        return render(
            request,
            "bulk_confirm.html",
            {
                "action": action,
                "label": LABELS[action],
                "picked": list(zip(picked, apps, strict=True)),
                "reason_code": reason_code,
                "reason": reason,
            },
        )
    results = []
    for (app_id, version), app in zip(picked, apps, strict=True):
        try:
            after = decide(
                session,
                action=action,
                application_id=app_id,
                version=version,
                user=user,
                now=clock.now(),
                config=config,
                reason_code=reason_code,
                reason=reason,
            )
            results.append((app.tracking_number, True, result_line(action, True, after)))
        except RegistryError as exc:
            results.append((app.tracking_number, False, result_line(action, False, app, str(exc))))
    return render(request, "bulk_done.html", {"results": results, "label": LABELS[action]})


@router.post(
    "/queue/{application_id}/decide",
    dependencies=[allow(REVIEWERS)],
    response_class=HTMLResponse,
    name="portal.decide",
)
def queue_decide(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    form: Posted,
) -> Response:
    forbid_unless(user, Role.ISP, Role.SECTOR_BODY, Role.REGULATOR)
    version = parse_id(form.get("version"))
    try:
        if version is None:
            raise ValidationFailed([FieldError("version", "required", "the page's version")])
        decide(
            session,
            action=form.get("action"),
            application_id=application_id,
            version=version,
            user=user,
            now=clock.now(),
            config=config,
            reason_code=form.get("reason_code"),
            reason=form.get("reason"),
        )
    except RegistryError as exc:
        return _item_page(
            request,
            session,
            user,
            config,
            clock.now(),
            application_id,
            errors=exc.field_errors(),
            failed_action=form.get("action"),
            status_code=exc.status,
        )
    return RedirectResponse(
        f"/queue?done=decided&application={application_id}&step={form.get('action')}",
        status_code=303,
    )


@router.post(
    "/queue/{application_id}/protocol-amendments/{amendment_id}/{decision}",
    dependencies=[allow(only(REGULATOR))],
    response_class=HTMLResponse,
    name="portal.decide_protocol_amendment",
)
def decide_protocol_amendment(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    application_id: PathId,
    amendment_id: PathId,
    decision: str,
    form: Posted,
) -> Response:
    """The regulator approves a requested protocol change (in force at once) or refuses it (the
    old list stays), with the application's version as seen on the page."""
    forbid_unless(user, Role.REGULATOR)
    try:
        queries.visible_application(session, application_id=application_id, viewer=user)
        if decision not in ("approve", "refuse"):
            raise NotFound("decision", decision)
        version = parse_id(form.get("version"))
        if version is None:
            raise ValidationFailed([FieldError("version", "required", "the page's version")])
        pending = services.pending_protocol_amendment(session, application_id=application_id)
        if pending is None or pending.id != amendment_id:
            raise NotFound("protocol amendment", amendment_id)
        services.decide_protocol_amendment(
            session,
            amendment_id=amendment_id,
            approve=decision == "approve",
            actor=user,
            now=clock.now(),
            expected_version=version,
        )
    except RegistryError as exc:
        return _item_page(
            request,
            session,
            user,
            config,
            clock.now(),
            application_id,
            errors=exc.field_errors(),
            status_code=exc.status,
        )
    done = "protocols_approved" if decision == "approve" else "protocols_refused"
    return RedirectResponse(f"/queue/{application_id}?done={done}", status_code=303)


@router.post(
    "/queue/amendments/{amendment_id}/approve",
    dependencies=[allow(only(REGULATOR))],
    response_class=HTMLResponse,
    name="portal.approve_amendment",
)
def approve_amendment(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    amendment_id: PathId,
    form: Posted,
) -> Response:
    """The regulator puts a requested peer change in force, with the application's version as
    seen on the page (a change since then gives a clear error, not a silent approval)."""
    version = parse_id(form.get("version"))
    back = parse_id(form.get("application_id"))
    forbid_unless(user, Role.REGULATOR)
    try:
        if version is None:
            raise ValidationFailed([FieldError("version", "required", "the page's version")])
        app = services.approve_amendment(
            session,
            amendment_id=amendment_id,
            actor=user,
            now=clock.now(),
            config=config,
            expected_version=version,
        )
    except RegistryError as exc:
        if back is not None:
            return _item_page(
                request,
                session,
                user,
                config,
                clock.now(),
                back,
                errors=exc.field_errors(),
                status_code=exc.status,
            )
        return render(
            request,
            "error.html",
            {
                "title": "Peer change not approved",
                "message": "",
                "errors": exc.field_errors(),
                "back": "/queue",
            },
            status_code=exc.status,
        )
    target = f"/queue/{app.id}" if back is not None else "/queue"
    return RedirectResponse(f"{target}?done=amendment_approved", status_code=303)
