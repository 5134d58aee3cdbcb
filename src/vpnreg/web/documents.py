"""How a stored document leaves the registry over HTTP, for the API and the portal alike: always
as an attachment under a sanitised name, with the stored (sniffed) content type and no sniffing
by the browser, so an uploaded file never renders inside the registry's origin."""

from __future__ import annotations

from fastapi import Response

from vpnreg.registry.services.documents import download_filename
from vpnreg.registry.views import DocumentView


def document_response(doc: DocumentView, content: bytes) -> Response:
    return Response(
        content,
        media_type=doc.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{download_filename(doc)}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
