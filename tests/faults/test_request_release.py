"""A request's session released after its connection was lost (PostgreSQL terminated it, as a
restart does, after the answer was decided): released quietly, the connection replaced, and the
next request served. It once raised from the dependency's teardown, a traceback per request."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from vpnreg.registry.services.unit_of_work import Database

pytestmark = pytest.mark.postgres


def test_a_session_whose_connection_was_terminated_is_released_quietly(pg_url: str) -> None:
    database = Database(pg_url)
    killer = Database(pg_url)
    try:
        session = database.open_request()
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with killer.session() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert session.in_transaction()
        asyncio.run(database.close_request(session))  # raised Unavailable before the fix

        again = database.open_request()
        try:
            assert again.execute(text("SELECT 1")).scalar_one() == 1
        finally:
            asyncio.run(database.close_request(again))
    finally:
        killer.dispose()
        database.dispose()


def test_a_unit_of_works_session_whose_connection_was_terminated_ends_quietly(
    pg_url: str,
) -> None:
    """`Database.session()` (the CLI's and the feed's unit of work) lets go of a lost connection
    as a request does: the with-block's exit raised before, hiding the block's own outcome."""
    database = Database(pg_url)
    killer = Database(pg_url)
    try:
        with database.session() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with killer.session() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            assert session.in_transaction()
        with database.session() as again:
            assert again.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        killer.dispose()
        database.dispose()
