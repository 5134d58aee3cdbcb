"""The OpenAPI document as the server behaves: every error an operation can answer, and how.

FastAPI documents a route's success, and a 422 in its own shape that this server never sends.
`describe_errors` rewrites the generated document once, from one table (`ERRORS`): which problem
(RFC 9457, `application/problem+json`, the shape vpnreg.web.problems sends, `PROBLEM`) each kind
of operation can answer. The kind is read off facts about the operation, not repeated per route:
who may call it (the policy table), whether it changes anything, whether it names an object in
its path, takes a body or query, or acts on a version (`If-Match`, declared required because a
missing one answers 428). The security schemes come from the same policy table.

A route may document an error of its own (the public RDAP-style `/ip/{address}` answers 400 and
404 as `application/rdap+json`); the table never overwrites what a route says itself.

No API operation answers 429 today: the sign-in and sign-up pages throttle, and they are not in
this document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from vpnreg.web.policy import (
    GATEWAY,
    PUBLIC,
    SAFE_METHODS,
    Access,
    RouteKey,
    access_for,
    build_policy,
)
from vpnreg.web.problems import MEDIA_TYPE, TYPE_PREFIX

#: The JSON Schema of a problem document, as `vpnreg.web.problems.problem_response` builds it.
PROBLEM: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457). `code` names its kind; `type` is the same as a URN.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "pattern": f"^{TYPE_PREFIX}[a-z0-9-]+$"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "maxLength": 600},
        "code": {"type": "string", "pattern": "^[a-z0-9-]+$"},
        "instance": {"type": "string"},
        "errors": {
            "description": "Each field that is wrong (validation-failed only).",
            "type": "array",
            "items": {"$ref": "#/components/schemas/FieldProblem"},
        },
        "expected_version": {"type": "integer", "description": "stale-version only"},
        "current_version": {"type": "integer", "description": "stale-version only"},
        "prefix": {"type": "string", "description": "overlap only"},
        "other_prefix": {"type": "string", "description": "overlap only"},
    },
}
FIELD_PROBLEM: dict[str, Any] = {
    "title": "FieldProblem",
    "type": "object",
    "required": ["field", "code", "message"],
    "properties": {
        "field": {"type": "string"},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "value": {"description": "An excerpt of the value refused (never all of a large one)"},
    },
}
#: How callers prove who they are.
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (`vpnreg tokens create`): a gateway's, or a user's.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "vpnreg_session",
        "description": "The portal's sign-in cookie; state changes also need `X-CSRF-Token`.",
    },
}
_JSON_ERROR_SCHEMAS = {"HTTPValidationError", "ValidationError"}


@dataclass(frozen=True)
class Operation:
    """What the table asks about one operation of the document."""

    method: str
    access: Access
    #: Names an object: an id in its path or its body.
    names_object: bool
    inputs: bool
    body: bool
    if_match: bool

    @property
    def changes(self) -> bool:
        return self.method not in SAFE_METHODS

    @property
    def public(self) -> bool:
        return PUBLIC in self.access

    @property
    def open_to_all(self) -> bool:
        """Public, and no caller's role is ever refused: a token or a cookie changes nothing."""
        return self.public and not self.changes


@dataclass(frozen=True)
class ErrorRule:
    """One row of the table: a status, what it means, and which operations can answer it."""

    status: int
    description: str
    applies: Callable[[Operation], bool]
    headers: Mapping[str, str] | None = None


#: THE table: every error an API or feed operation can answer, and when.
ERRORS: tuple[ErrorRule, ...] = (
    ErrorRule(
        400,
        "`http-error`: the body could not be parsed (not UTF-8 JSON, or a broken multipart).",
        lambda op: op.body,
    ),
    ErrorRule(
        401,
        "`not-signed-in`: no sign-in where one is needed, or an unknown, revoked or expired "
        "API token (sent anywhere).",
        lambda op: True,
        {"WWW-Authenticate": "Bearer, when a token was refused"},
    ),
    ErrorRule(
        403,
        "`role-not-allowed`: the caller's role may not call this; `forbidden`: a role-only "
        "token where a user is needed, or not the caller's object to act on; `csrf-failed`: "
        "a cookie-signed change without its CSRF token.",
        lambda op: not op.open_to_all,
    ),
    ErrorRule(
        404,
        "`not-found`: no such object, or none the caller may see.",
        lambda op: op.names_object,
    ),
    ErrorRule(
        409,
        "`state-conflict`: not possible in the object's state; `overlap`: the address space is "
        "taken by another application.",
        lambda op: op.changes,
    ),
    ErrorRule(
        412,
        "`stale-version`: If-Match names another version than the current one (GET it again).",
        lambda op: op.if_match,
    ),
    ErrorRule(
        413,
        "`body-too-large`: the body is over its cap (2 MiB; 12 MiB multipart; 8 MiB for a "
        "binding report); it was not read.",
        lambda op: op.body,
    ),
    ErrorRule(
        422,
        "`validation-failed`: the input is malformed or refused; `errors` lists each field.",
        lambda op: op.inputs,
    ),
    ErrorRule(
        428,
        "`if-match-required`: If-Match is missing (GET the object first and send its ETag).",
        lambda op: op.if_match,
    ),
    ErrorRule(
        503,
        "`busy`: the database could not take the request in time; retry after `Retry-After` "
        "seconds.",
        lambda op: True,
        {"Retry-After": "Seconds to wait before trying again"},
    ),
)


def _body_fields(document: Mapping[str, Any], content: Mapping[str, Any]) -> set[str]:
    fields: set[str] = set()
    for media in content.values():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        fields.update(schema.get("properties", {}))
    return fields


def _operation(
    document: Mapping[str, Any], method: str, spec: Mapping[str, Any], access: Access
) -> Operation:
    parameters = spec.get("parameters", [])
    content = spec.get("requestBody", {}).get("content", {})
    return Operation(
        method=method,
        access=access,
        names_object=any(p["in"] == "path" for p in parameters)
        or any(name.endswith("_id") for name in _body_fields(document, content)),
        inputs=bool(parameters) or bool(content),
        body=bool(content),
        if_match=any(p["in"] == "header" and p["name"] == "If-Match" for p in parameters),
    )


def _problem_response(rule: ErrorRule) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": rule.description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if rule.headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in rule.headers.items()
        }
    return response


def _security(access: Access) -> list[dict[str, list[str]]]:
    schemes: list[dict[str, list[str]]] = [{"bearer": []}]
    if access - {GATEWAY, PUBLIC}:
        schemes.append({"session": []})
    return ([{}] if PUBLIC in access else []) + schemes


def describe_errors(document: dict[str, Any], policy: Mapping[RouteKey, Access]) -> None:
    """Rewrite `document` (FastAPI's) in place so that it tells the truth about errors."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _JSON_ERROR_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM
    schemas["FieldProblem"] = FIELD_PROBLEM
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in document.get("paths", {}).items():
        for method, spec in item.items():
            access = access_for(policy, method, path) or frozenset()
            for parameter in spec.get("parameters", []):
                if parameter["in"] == "header" and parameter["name"] == "If-Match":
                    parameter["required"] = True
            operation = _operation(document, method.upper(), spec, access)
            responses = spec.setdefault("responses", {})
            fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if fastapi_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for rule in ERRORS:
                key = str(rule.status)
                if not rule.applies(operation):
                    continue
                if key in responses and "content" in responses[key]:
                    continue  # the route documents this answer itself
                responses[key] = _problem_response(rule)
            spec["security"] = _security(access)


def install_openapi(app: FastAPI) -> None:
    """Serve the truthful document at the app's `openapi_url` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            describe_errors(document, getattr(app.state, "policy", None) or build_policy(app))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
