"""Bounds on every number a request carries, so an absurd one is a 422, not a database error.

Ids and versions are stored as PostgreSQL INTEGER (32 bits; SQLite holds 64): a larger number
in a path, a query, a form or a body used to reach the driver and fail with a 500 (2**63 and
more on either database, OverflowError; 2**31 and more on PostgreSQL, "integer out of range",
found by schemathesis).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Query

#: The largest id or version every supported database holds (PostgreSQL INTEGER); offsets too,
#: as no list is anywhere near as long.
MAX_ID = 2**31 - 1

#: An object's id in a path.
PathId = Annotated[int, Path(ge=0, le=MAX_ID)]
#: An optional id filter in a query.
QueryId = Annotated[int | None, Query(ge=0, le=MAX_ID)]
#: Where a page of a list starts.
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
#: The version a form was rendered with.
FormVersion = Annotated[int, Form(ge=0, le=MAX_ID)]


def parse_id(text: str) -> int | None:
    """A form's id or version text as a number the database can hold, else None."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if value <= MAX_ID else None
