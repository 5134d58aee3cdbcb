"""The fan-out benchmark's own parts: its lean HTTP client against a real nginx, and how it
turns arrival times into the share-of-gateways figures."""

from __future__ import annotations

import asyncio
import gzip
import math
from pathlib import Path

from bench.bench_gateway_fanout import _quantiles
from bench.lean_http import Connection

from tests.fixtures.nginx import serve_directory


def test_the_lean_client_reads_bodies_304s_and_keeps_its_connection(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.json").write_bytes(b'{"a": 1}')
    (root / "b.json.gz").write_bytes(gzip.compress(b"[1, 2, 3]"))

    async def talk(port: int) -> None:
        conn = Connection("127.0.0.1", port)
        first = await conn.get("/a.json")
        assert (first.status, first.body) == (200, b'{"a": 1}')
        assert first.wire_bytes > len(first.raw) > 0
        again = await conn.get("/a.json", {"If-None-Match": first.headers["etag"]})
        assert (again.status, again.raw) == (304, b"")
        packed = await conn.get("/b.json.gz")
        assert gzip.decompress(packed.raw) == b"[1, 2, 3]"
        missing = await conn.get("/none")
        assert missing.status == 404
        await conn.close()

    with serve_directory(root, tmp_path / "nginx") as web:
        asyncio.run(talk(web.port))
        # four requests answered, none retried
        assert len(web.requests(at_least=4)) == 4


def test_shares_of_gateways_count_the_missing_as_never() -> None:
    got = _quantiles([float(i) for i in range(1, 101)], 100)
    assert got == (50.0, 99.0, 100.0)
    partial = _quantiles([1.0, 2.0], 3)
    assert partial[0] == 2.0 and math.isinf(partial[1]) and math.isinf(partial[2])


def test_a_kept_alive_connection_the_server_closed_is_asked_again_once() -> None:
    """A server that answers one request per connection and then closes it, unannounced (as
    nginx does to an idle connection after its keepalive_timeout): every GET is answered."""

    async def scenario() -> None:
        connections = 0

        async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(one_answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = Connection("127.0.0.1", port)
        for _ in range(3):
            await asyncio.sleep(0.05)  # the close reaches the client while it is idle
            assert (await conn.get("/x")).raw == b"ok"
        await conn.close()
        server.close()
        await server.wait_closed()
        assert connections == 3

    asyncio.run(scenario())
