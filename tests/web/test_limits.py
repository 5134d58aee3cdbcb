"""Bodies over their cap are refused with 413 before they are read, and refusals quote only an
excerpt of bad input, so one huge request costs neither memory nor a huge answer."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.harness import Api
from vpnreg.web.limits import MAX_BODY_BYTES, BodyLimit


def test_a_declared_large_body_is_refused_unread(api: Api) -> None:
    body = b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}"
    response = api.client("public").post(
        "/api/v1/applications", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "body-too-large"


def _run(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
    """Drive BodyLimit around `app` with a chunked body; returns (status, chunks consumed)."""
    consumed = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        consumed += 1
        index = consumed - 1
        return {
            "type": "http.request",
            "body": chunks[index],
            "more_body": index < len(chunks) - 1,
        }

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    asyncio.run(BodyLimit(app)(scope, receive, send))
    return int(sent[0]["status"]), consumed


async def _echo_size(scope: Any, receive: Any, send: Any) -> None:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_a_chunked_body_is_read_only_up_to_the_cap() -> None:
    chunk = b"x" * (1024 * 1024)
    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    status, consumed = _run(_echo_size, headers, [chunk] * 100)
    assert status == 413
    assert consumed <= MAX_BODY_BYTES // len(chunk) + 1  # not the whole 100 MiB
    status, consumed = _run(_echo_size, headers, [b"{}"])
    assert (status, consumed) == (200, 1)


def test_a_huge_bad_value_is_quoted_as_an_excerpt(api: Api) -> None:
    peer = "9" * 60_000
    response = api.client("ali").post(
        "/api/v1/applications",
        json={"isp_id": api.world.isp, "prefixes": [{"prefix": "x" * 60, "peers": [peer]}]},
    )
    assert response.status_code == 422
    assert len(response.content) < 5_000
