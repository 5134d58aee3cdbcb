"""Telling an HTMX request (a part of a page swapped in) from a whole-page request."""

from __future__ import annotations

from starlette.requests import Request


def is_htmx(request: Request) -> bool:
    """A request HTMX made to swap part of a page (not a history restore, which wants it all)."""
    headers = request.headers
    return headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") is None
