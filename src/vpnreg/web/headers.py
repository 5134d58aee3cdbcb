"""Security headers on every answer: no framing, no sniffing, no referrer leaks, and a
Content-Security-Policy that lets pages load only the portal's own script and stylesheet.

The Swagger UI page (/api/v1/docs) is FastAPI's and loads its assets from a CDN with an inline
script, so it gets every header but the CSP.
"""

from __future__ import annotations

from typing import Any

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
_COMMON = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
_DOCS_PATH = "/api/v1/docs"


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response (errors included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(_COMMON)
        if scope.get("path") != _DOCS_PATH:
            extra.append((b"content-security-policy", CSP.encode()))

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((n, v) for n, v in extra if n not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
