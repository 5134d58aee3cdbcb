"""The HTTP/1.1 protocol `vpnreg serve` runs: uvicorn's, with deadlines for slow clients and a
connection limit that answers 503 problem+json.

uvicorn closes idle keep-alive connections and can refuse work over a concurrency limit, but it
waits forever for a request head or body that arrives a byte at a time (slow loris): 2,000 such
sockets stayed open for a minute and more. This subclass of uvicorn's httptools protocol adds:

- a header deadline: the request line and headers must be complete within `header_timeout_s`
  of the connection being made (or of the request's first byte on a kept-alive connection);
- a body deadline: once the head is in, the whole body must arrive within `body_timeout_s`;
- a connection limit: a request arriving while more than `max_connections` connections are
  open, or as many requests are being handled, gets 503 problem+json with Retry-After and
  `Connection: close`, instead of uvicorn's plain-text 503.

A client that misses a deadline gets 408 (when no answer was started) and its socket is
closed. Body sizes are capped separately, by vpnreg.web.limits (413).

This relies on the httptools protocol's internals (`cycle`, `connections`, `tasks`, `app`, the
parser callbacks); tests/concurrency/test_abuse.py fails if a uvicorn upgrade changes them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vpnreg.web.problems import MEDIA_TYPE, TYPE_PREFIX, problem_response


@dataclass(frozen=True)
class ServerLimits:
    """What `vpnreg serve` allows a client (vpnreg.settings.Settings holds the defaults)."""

    header_timeout_s: float
    body_timeout_s: float
    keep_alive_s: int
    max_connections: int


def _timeout_response() -> bytes:
    """408 problem+json written straight to the socket: no ASGI cycle exists to answer it."""
    body = json.dumps(
        {
            "type": TYPE_PREFIX + "request-timeout",
            "title": "Request Timeout",
            "status": 408,
            "detail": "the request did not arrive in time; the connection is closed",
            "code": "request-timeout",
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"content-type: {MEDIA_TYPE}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


TIMEOUT_RESPONSE = _timeout_response()


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer to a request over the connection limit: try again in a moment."""
    response = problem_response(
        503,
        "overloaded",
        "the server has too many connections open; try again in a moment",
        instance=scope.get("path"),
        headers={"Retry-After": "1", "Connection": "close"},
    )
    await response(scope, receive, send)


def guarded_protocol(limits: ServerLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol bound to `limits` (pass it as uvicorn's `http=`)."""

    class GuardedHttpProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The limit is checked here (see on_headers_complete), not by uvicorn's own.
            self.limit_concurrency = None
            self._deadline: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            answered = False
            if cycle is not None and not cycle.response_complete:
                # The handler may be waiting for the rest of the body: it now reads a
                # disconnect, and anything it still sends is dropped.
                answered = cycle.response_started
                cycle.disconnected = True
                cycle.message_event.set()
            elif cycle is not None and cycle.more_body:
                # Answered already (say 401 before reading), but the body still trickles in.
                answered = True
            if not answered:
                self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(limits.header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            # The first request's head keeps the deadline armed at connect; a kept-alive
            # connection's next request gets its own from its first byte.
            if self._deadline is None:
                self._arm(limits.header_timeout_s)

        def on_headers_complete(self) -> None:
            self._arm(limits.body_timeout_s)
            overloaded = (
                len(self.connections) > limits.max_connections
                or len(self.tasks) >= limits.max_connections
            )
            if not overloaded:
                super().on_headers_complete()
                return
            # uvicorn picks the application here; hand it the 503 for this one request.
            app = self.app
            self.app = _overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = app

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

    return GuardedHttpProtocol
