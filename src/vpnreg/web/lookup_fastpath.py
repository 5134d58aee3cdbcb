"""The public lookup's hot path: `GET /api/v1/ip/{address}` from anyone, answered from the
in-memory index before the web framework routes the request.

A public lookup is the one request anyone may send as fast as they like (issue 18 asks 2,000 a
second per worker). Answered by its FastAPI route, most of its cost was the framework's own:
matching the path against every route, solving the app-wide dependencies (a database session
that the index never uses), the exception layers. This layer answers the plain case itself, with
the route's own renderer (vpnreg.web.api.rdap) and the route's own index (vpnreg.web.lookup),
so the two cannot disagree; everything else passes to the app untouched and is answered by the
route as before:

- anything but GET, another path, a query string (`port`, `at`), an Authorization header (a
  token is still checked and a bad one gets its 401, as `web.auth._open_and_anonymous` says);
- no index ready without I/O (before the first publish, a build due after a publish, the index
  turned off with VPNREG_LOOKUP_INDEX=0);
- an address that does not parse (the route's 400 or 422), or one the index cannot answer
  (a registration without details: the route asks SQL).

The security headers are still added: the layer sits inside `web.headers.SecurityHeaders`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from vpnreg.registry.errors import ValidationFailed
from vpnreg.registry.services.lookup import lookup_query
from vpnreg.web.api.rdap import MAX_ADDRESS, rdap_answer
from vpnreg.web.lookup import ready_index

__all__ = ["IndexedLookup"]

PREFIX = "/api/v1/ip/"


class IndexedLookup:
    """ASGI middleware answering the plain public lookup from the index (module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(PREFIX)
            and not scope["query_string"]
        ):
            response = _answer(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _answer(scope: Any) -> Response | None:
    address = scope["path"][len(PREFIX) :]
    # longer ones get the route's 422
    if not address or "/" in address or len(address) > MAX_ADDRESS:
        return None
    if any(name == b"authorization" for name, _ in scope["headers"]):
        return None
    state = scope["app"].state
    index = ready_index(state)
    if index is None:
        return None
    try:
        ip = lookup_query(address, None)
    except ValidationFailed:
        return None
    found = index.lookup(ip, port=None, now=state.clock.now())
    return None if found is None else rdap_answer(found)
