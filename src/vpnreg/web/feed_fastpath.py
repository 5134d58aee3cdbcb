"""The gateways' long poll on its hot path: `GET /feed/v1/delta` from a gateway whose token was
checked moments ago, answered before the web framework routes the request.

A thousand gateways each send one such request per change of the feed, all at once after every
publish (ADR 0018). Through the FastAPI route most of each request's cost was the framework's
own (matching, the app-wide dependencies, the exception layers), and it set how soon the last
gateway got its answer. This layer answers the plain case with the route's own implementation
(`FeedServer.delta_response`) after the same checks, taken from the same places:

- the caller from the token cache (`web.auth.cached_caller`), allowed by the policy table's
  entry for the route (`web.policy`);
- the query: `since`, `session` and `wait`, with the route's bounds; anything more or
  anything that does not parse passes on.

Everything else passes to the app untouched and is answered by the route as before: a token
not in the cache (the route checks it in the database and fills the cache), another role, a
malformed header, another path. The layer sits inside `web.headers.SecurityHeaders`.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vpnreg.web.auth import cached_caller
from vpnreg.web.feed import MAX_SERIAL, MAX_SESSION_ID, FeedServer
from vpnreg.web.policy import access_for, allows
from vpnreg.web.problems import Problem

__all__ = ["FeedFastPath"]

PATH = "/feed/v1/delta"
_PARAMS = frozenset({"since", "session", "wait"})


class FeedFastPath:
    """ASGI middleware answering a cached gateway's /feed/v1/delta (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == PATH:
            response = await _answer(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _answer(scope: Any) -> Response | None:
    state = scope["app"].state
    server: FeedServer | None = getattr(state, "feed", None)
    if server is None:
        return None
    request = Request(scope)
    try:
        caller = cached_caller(request, state.clock.now())
    except Problem:
        return None
    access = access_for(state.policy, "GET", PATH)
    if caller is None or not allows(access, caller.role):
        return None
    query = _query(request)
    if query is None:
        return None
    since, session, wait = query
    return await server.delta_response(request, since=since, session=session, wait=wait)


def _query(request: Request) -> tuple[int, str | None, float] | None:
    """`since`, `session` and `wait` as the route would take them, or None to let it."""
    params = request.query_params
    if set(params) - _PARAMS or len(params.multi_items()) != len(params):
        return None
    since_text = params.get("since", "")
    if not (since_text.isascii() and since_text.isdigit()) or int(since_text) > MAX_SERIAL:
        return None
    session = params.get("session")
    if session is not None and len(session) > MAX_SESSION_ID:
        return None
    wait_text = params.get("wait", "0")
    try:
        wait = float(wait_text)
    except ValueError:
        return None
    if not math.isfinite(wait) or wait < 0 or not wait_text.isascii():
        return None
    return int(since_text), session, wait
