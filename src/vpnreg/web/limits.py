"""Request bodies are capped before they are read: 413 (problem+json, or an error page for a
person in a browser), never a 100 MB parse.

A body declaring a larger Content-Length is refused at once, unread. A body without one
(chunked) is read only up to the cap, then refused. Uploads (multipart) may carry one document
(vpnreg.registry.services.documents.MAX_DOCUMENT_BYTES) and the form around it; everything
else is small JSON or a form.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from vpnreg.web.problems import answer

#: A JSON body or a plain form: 256 prefixes with 64 peers each fit with room to spare.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: A multipart upload: one document of at most 5 MiB, a CSV of prefixes, and the fields.
MAX_UPLOAD_BYTES = 12 * 1024 * 1024
#: An ISP's binding report: 10,000 events of up to about 500 bytes each, with room to spare.
MAX_BINDINGS_BYTES = 8 * 1024 * 1024
_BINDINGS_PATH = re.compile(r"^/api/v1/isps/[0-9]{1,12}/bindings$")


def limit_for(content_type: str, path: str = "") -> int:
    if content_type.startswith("multipart/"):
        return MAX_UPLOAD_BYTES
    return MAX_BINDINGS_BYTES if _BINDINGS_PATH.match(path) else MAX_BODY_BYTES


class BodyLimit:
    """ASGI middleware: refuse a request body over its limit with 413 before the app reads it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        limit = limit_for(
            headers.get(b"content-type", b"").decode("latin-1"), str(scope.get("path", ""))
        )
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await self._refuse(scope, receive, send, limit)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        # No length given: read up to the limit here, then replay what was read to the app.
        messages = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Any, receive: Any, send: Any, limit: int) -> None:
        response = answer(
            Request(scope),
            413,
            "body-too-large",
            f"the request body is larger than {limit // (1024 * 1024)} MiB; nothing was read",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
