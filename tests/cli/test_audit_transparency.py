"""`vpnreg audit checkpoint | export | verify --export` through the real console script: the
outside check passes an honest export, catches a history rewritten after a checkpoint (which
the plain `audit verify` cannot), and refuses bad input in one line (ADR 0008)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.cli.conftest import Run
from tests.cli.test_contract import _apply
from tests.registry.tampering import drop_triggers, rewrite_from
from vpnreg.registry.audit_log import iter_records
from vpnreg.registry.db import make_engine

pytestmark = pytest.mark.slow


def _outside(run: Run, export: str, checkpoint: str) -> tuple[int, list[str], str]:
    result = run(
        "audit", "verify", "--export", export, "--checkpoint", checkpoint,
        "--trust", "var/feed.pub",
    )  # fmt: skip
    return result.code, result.err_lines, result.out


def test_a_rewrite_after_a_checkpoint_is_caught_from_outside(registry: Run, tmp_path: Path) -> None:
    tracking = _apply(registry, tmp_path)
    assert registry("review", "verify", tracking, "--actor", "isp1").code == 0
    signed = registry("audit", "checkpoint", "--json")
    assert signed.code == 0, signed.err
    (tmp_path / "checkpoint.json").write_text(signed.out)
    count = json.loads(signed.out)["count"]
    assert registry("audit", "export", "--out", "export.jsonl").code == 0
    exported = (tmp_path / "export.jsonl").read_text()
    assert len(exported.splitlines()) == count
    assert "alice" not in exported and "Acme Software" not in exported
    code, err, out = _outside(registry, "export.jsonl", "checkpoint.json")
    assert (code, err) == (0, [])
    assert out.startswith(f"export consistent: {count} events")

    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        with Session(engine) as session:
            verified = next(r for r in iter_records(session) if r.action == "verify")
            assert isinstance(verified.after, dict)
            drop_triggers(session, "audit_log")
            rewrite_from(session, verified.seq, {**verified.after, "state": "rejected"})
            session.commit()
    finally:
        engine.dispose()
    assert registry("audit", "verify").code == 0  # the database alone cannot tell
    assert registry("audit", "export", "--out", "rewritten.jsonl").code == 0
    code, err, _ = _outside(registry, "rewritten.jsonl", "checkpoint.json")
    assert code == 1
    assert len(err) == 1
    assert "history was rewritten" in err[0]


def test_bad_input_is_one_line_with_the_contract_exit_code(registry: Run, tmp_path: Path) -> None:
    signed = registry("audit", "checkpoint", "--json")
    assert signed.code == 0, signed.err
    (tmp_path / "checkpoint.json").write_text(signed.out)
    assert registry("audit", "export", "--out", "export.jsonl").code == 0
    lines = (tmp_path / "export.jsonl").read_text().splitlines()
    (tmp_path / "garbled.jsonl").write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    (tmp_path / "bad-checkpoint.json").write_text('{"number": 1}')
    cases = [
        (("--export", "missing.jsonl", "--checkpoint", "checkpoint.json", "--trust",
          "var/feed.pub"), 2, "missing.jsonl"),
        (("--export", "export.jsonl", "--checkpoint", "missing.json", "--trust",
          "var/feed.pub"), 2, "missing.json"),
        (("--export", "export.jsonl", "--checkpoint", "checkpoint.json", "--trust",
          "nokey.pub"), 2, "nokey.pub"),
        (("--export", "export.jsonl", "--trust", "var/feed.pub"), 2, "--checkpoint"),
        (("--checkpoint", "checkpoint.json"), 2, "--export"),
        (("--export", "garbled.jsonl", "--checkpoint", "checkpoint.json", "--trust",
          "var/feed.pub"), 1, "line 2 is not JSON"),
        (("--export", "export.jsonl", "--checkpoint", "bad-checkpoint.json", "--trust",
          "var/feed.pub"), 1, "checkpoint lacks"),
    ]  # fmt: skip
    for args, code, words in cases:
        result = registry("audit", "verify", *args)
        assert result.code == code, (args, result.err)
        assert len(result.err_lines) == 1, result.err
        assert words in result.err, result.err
