"""A gateway's long poll holds no database connection while it waits: the request's session
ends the read that checked the token. Before, each waiting poll kept a pooled connection for its
whole wait, and a thousand gateways emptied the pool (40) and stalled every request."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.harness import Api

#: More waiting polls than a pool would hold if each kept its connection (checked below).
POLLS = 12


def test_waiting_long_polls_hold_no_pooled_connection(api: Api) -> None:
    engine = api.app.state.database.engine
    headers = {"Authorization": f"Bearer {api.gateway_token}"}

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            first = await http.get("/feed/v1/snapshot", headers=headers)
            assert first.status_code == 200, first.text
            serial, session = first.json()["serial"], first.json()["session_id"]
            query = {"since": serial, "session": session, "wait": 2}
            polls = [
                asyncio.create_task(http.get("/feed/v1/notify", params=query, headers=headers))
                for _ in range(POLLS)
            ]
            await asyncio.sleep(1)  # every poll is past its token check and waiting
            held = engine.pool.checkedout()
            answers = await asyncio.gather(*polls)
            assert held == 0, f"{held} connections held by {POLLS} waiting polls"
            return [a.status_code for a in answers]

    assert asyncio.run(run()) == [204] * POLLS
