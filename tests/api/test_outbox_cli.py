"""`vpnreg outbox` lists the notices the API's state changes queued."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from tests.api.harness import Api
from vpnreg.cli import outbox


def test_outbox_lists_the_notices_of_a_submission(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.create("ali", ["192.0.2.240/29"])
    api.step("ali", created["id"], "submit")
    monkeypatch.setenv("VPNREG_DATABASE_URL", api.url)
    app = typer.Typer()
    outbox.register(app)
    app.command("unused")(lambda: None)
    result = CliRunner().invoke(
        app, ["outbox", "--application", str(created["tracking_number"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["recipient"] for r in rows} == {"ali", "noc"}
    assert all(r["subject"].endswith("draft -> submitted") for r in rows)
    assert all(r["sent_at"] is None for r in rows)
    assert "192.0.2.240/29" in rows[0]["body"]
