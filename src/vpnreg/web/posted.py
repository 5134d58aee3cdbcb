"""A posted form, read on the event loop, handed to a plain (threaded) route as data.

Starlette reads a form body asynchronously, which tempted the portal's form routes to be
`async def` and then run the registry's synchronous services on the event loop, stalling every
other request while one waited for the database. A route instead takes `Posted`: this
dependency awaits the form (already parsed if the CSRF check read it), copies its fields and
the first bytes of its files, and closes it; the route itself is a `def`, which FastAPI runs in
its thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile


@dataclass(frozen=True)
class PostedForm:
    """Text fields (every value of each name) and uploaded files (name -> (filename, bytes)).

    A file is read up to one byte past the app's document limit, enough to tell that it is too
    large; a file input left empty is absent.
    """

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))

    def file(self, name: str) -> tuple[str, bytes] | None:
        return self.files.get(name)


async def read_posted_form(request: Request) -> PostedForm:
    limit: int = request.app.state.max_document_bytes
    form = await request.form()
    try:
        fields: dict[str, list[str]] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if value.filename and name not in files:
                    files[name] = (value.filename, await value.read(limit + 1))
            else:
                fields.setdefault(name, []).append(value)
    finally:
        await form.close()
    return PostedForm(fields, files)


Posted = Annotated[PostedForm, Depends(read_posted_form)]
