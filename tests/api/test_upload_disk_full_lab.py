"""The API's upload route onto a full document store (a small tmpfs; root, hence `_lab.py`):
507 problem+json saying the store is full, nothing stored, the application unchanged."""

from __future__ import annotations

from pathlib import Path

from tests.api.harness import Api
from tests.fixtures.disk import fill, small_disk
from tests.fixtures.documents import pdf


def test_an_upload_onto_a_full_store_answers_507(api: Api) -> None:
    client = api.client("ali")
    app_id = api.create("ali", ["192.0.2.248/29"])["id"]
    url = f"/api/v1/applications/{app_id}/documents"
    directory: Path = api.app.state.document_dir
    with small_disk(directory, size_kib=64):
        filler = fill(directory)
        response = client.post(
            url, files={"file": ("lease.pdf", pdf(b"%" + b"y" * 20_000 + b"\n"))},
            data={"kind": "lease"},
        )  # fmt: skip
        assert response.status_code == 507, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["code"] == "storage-full" and body["type"].endswith("storage-full"), body
        assert "nothing was stored" in body["detail"]
        assert client.get(url).json() == []
        assert [p.name for p in directory.rglob("*")] == [filler.name]
        filler.unlink()
