"""A minimal HTTP/1.1 client over asyncio streams, for benchmarks that simulate many clients in
one process: one keep-alive connection per client, a request at a time, bodies by
Content-Length or chunked. httpx costs about a millisecond of Python per request; a thousand
simulated gateways on two cores would measure httpx, not the server they talk to.

Only what the benchmarks' servers send is read (uvicorn and nginx): no pipelining, no
trailers, no 1xx. Anything else is an error, not a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    #: The body as sent (still gzipped when the server gzipped it).
    raw: bytes
    #: Bytes received for this answer: status line, headers and body.
    wire_bytes: int

    @property
    def body(self) -> bytes:
        """The body, gunzipped when it came gzipped."""
        if self.headers.get("content-encoding") == "gzip":
            return gzip.decompress(self.raw)
        return self.raw


class HttpError(Exception):
    """The connection broke or the answer was not HTTP/1.1 the way this client reads it."""


class Connection:
    """One keep-alive connection to host:port; reconnects when the server closed it (and sends
    a GET again once when the server closed the idle connection under it)."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self._host, self._port = host, port
        self._headers = {"Host": f"{host}:{port}", **(headers or {})}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def get(
        self, target: str, headers: dict[str, str] | None = None, *, timeout: float = 120.0
    ) -> Answer:
        """The answer to GET `target`; HttpError when none comes within `timeout` seconds (the
        connection is then dropped: a late answer must not be read as the next one's).

        A kept-alive connection the server closed while it was idle (nginx's keepalive_timeout)
        ends before the first byte of the answer: the GET is sent again once on a new
        connection, as HTTP clients do (RFC 9110 section 9.2.2: a GET is idempotent)."""
        reused = self._writer is not None and not self._writer.is_closing()
        try:
            return await asyncio.wait_for(self._get(target, headers or {}), timeout)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            await self.close()
            unanswered = isinstance(exc, ConnectionError) or (
                isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
            )
            if not (reused and unanswered):
                raise HttpError(f"GET {target}: {exc!r}") from None
        try:
            return await asyncio.wait_for(self._get(target, headers or {}), timeout)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            await self.close()
            raise HttpError(f"GET {target}: {exc!r}") from None

    async def _get(self, target: str, headers: dict[str, str]) -> Answer:
        reader, writer = await self._open()
        lines = [f"GET {target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in {**self._headers, **headers}.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"GET {target}: not an HTTP/1.x answer: {status_line!r}")
        status = int(parts[1])
        got: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
        raw = b""
        if status not in (204, 304):
            if "content-length" in got:
                raw = await reader.readexactly(int(got["content-length"]))
            elif got.get("transfer-encoding") == "chunked":
                raw = await _chunked(reader)
            else:
                raise HttpError(f"GET {target}: a body without a length")
        if got.get("connection", "").lower() == "close":
            await self.close()
        return Answer(status, got, raw, len(head) + len(raw))

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    pieces: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(pieces)
        pieces.append(await reader.readexactly(size))
        await reader.readexactly(2)
