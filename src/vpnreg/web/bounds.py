"""Bounds on every number a request carries, so an absurd one is a 422, not a database error.

Ids and versions are stored as 64-bit integers (PostgreSQL BIGINT, SQLite INTEGER); a larger
number in a path, a query, a form or a body used to reach the driver and fail with a 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Path, Query

#: The largest id or version the database can hold.
MAX_ID = 2**63 - 1

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
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_ID else None
