"""Errors as RFC 9457 problem details (application/problem+json), one place for every route.

A person in a browser gets the same problem as an HTML page in the portal's layout instead
(vpnreg.web.error_pages): what happened, what to do next and a way back. Machines keep the
JSON: `/api/` and `/feed/` paths, requests with an Authorization header, HTMX fragment requests
and any client whose Accept header does not ask for text/html.

A problem's `type` is a URN naming its kind (`urn:vpnreg:problem:<code>`); `code` repeats the
kind for clients that prefer a plain field. Validation problems list every field in `errors`,
each with the field, a reason code and a message. Authorization refusals by the policy table
are `not-signed-in` (401) and `role-not-allowed` (403), so tests can tell them from object-level
refusals such as `forbidden`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vpnreg.core.excerpt import excerpt
from vpnreg.registry.errors import (
    Busy,
    FieldError,
    OverlapConflict,
    RegistryError,
    StaleVersion,
    ValidationFailed,
)
from vpnreg.web.policy import allowed_methods

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:vpnreg:problem:"

#: Codes the policy table answers with; anything else is decided further in.
POLICY_CODES = frozenset({"not-signed-in", "role-not-allowed", "no-policy"})

_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    422: "Invalid input",
    428: "Precondition required",
    429: "Too many requests",
    500: "Server error",
    503: "Busy",
}


def title_of(status: int) -> str:
    """The one short title of an HTTP status, for problem documents and error pages alike."""
    return _TITLES.get(status, "Error")


class Problem(Exception):
    """Raise anywhere in a request to answer with this problem."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or title_of(status)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title or title_of(status),
        "status": status,
        "detail": excerpt(detail, 500),
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return JSONResponse(
        jsonable_encoder(body), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def field_errors(errors: Sequence[FieldError]) -> list[dict[str, Any]]:
    """Each problem with an excerpt of the bad value (never all of a huge one)."""
    return [
        {
            "field": e.field,
            "code": e.code,
            "message": excerpt(e.message, 300),
            "value": excerpt(e.value) if isinstance(e.value, str) else e.value,
        }
        for e in errors
    ]


def registry_parts(err: RegistryError) -> tuple[str, dict[str, Any], dict[str, str] | None]:
    """A registry error's problem code, extra members and headers."""
    extra: dict[str, Any] = {}
    headers = {"Retry-After": "1"} if isinstance(err, Busy) else None
    if isinstance(err, ValidationFailed):
        extra["errors"] = field_errors(err.errors)
    elif isinstance(err, StaleVersion):
        extra.update(expected_version=err.expected, current_version=err.actual)
    elif isinstance(err, OverlapConflict):
        extra.update(prefix=err.prefix, other_prefix=err.other_prefix)
    return err.code.replace("_", "-"), extra, headers


def _field_name(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def wants_page(request: Request) -> bool:
    """Whether the caller is a person in a browser on a portal page (else: problem+json)."""
    path = request.url.path
    if path.startswith(("/api/", "/feed/")) or request.headers.get("authorization"):
        return False
    if request.headers.get("hx-request"):
        # A fragment request: HTMX swaps no error answer into the page; scripts read the JSON.
        return False
    return "text/html" in request.headers.get("accept", "")


def answer(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """The one way an error leaves: an HTML page for a person, problem+json for everyone else."""
    document = problem_response(
        status,
        code,
        detail,
        title=title,
        instance=request.url.path,
        headers=headers,
        extra=extra,
    )
    if not wants_page(request):
        return document
    # Imported here (as below): the page renderer needs web.auth, which raises Problem.
    from vpnreg.web.error_pages import error_page

    return error_page(request, status, code, detail, document, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves through `answer`, whichever layer raised it."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        if exc.code == "not-signed-in" and wants_page(request):
            # A person following a link to a page: send them to sign in and back.
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/login?next={target}", status_code=303)
        return answer(
            request,
            exc.status,
            exc.code,
            exc.detail,
            title=exc.title,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RegistryError)
    async def _registry(request: Request, exc: RegistryError) -> Response:
        code, extra, headers = registry_parts(exc)
        return answer(request, exc.status, code, exc.message, headers=headers, extra=extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "field": _field_name(e.get("loc", ())),
                "code": str(e.get("type", "invalid")),
                "message": str(e.get("msg", "invalid value")),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return answer(
            request,
            422,
            "validation-failed",
            f"{first['field']}: {first['message']}{more}",
            extra={"errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        if wants_page(request):
            from vpnreg.web.error_pages import recognise_visitor

            await recognise_visitor(request)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path only.
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return answer(request, exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Starlette logs the exception and re-raises it after this answer; the caller learns
        # nothing of its insides.
        return answer(request, 500, "server-error", "the server failed to answer this request")
