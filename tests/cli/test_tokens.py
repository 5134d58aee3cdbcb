"""`vpnreg tokens` through the real console script: user-bound tokens, the role/user choice,
the user column, expiry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import Run

#: Real vpnreg processes, on the registry built through the CLI.
pytestmark = pytest.mark.slow


def test_a_user_token_is_printed_once_and_listed_with_its_user(
    registry: Run, tmp_path: Path
) -> None:
    made = registry("tokens", "create", "--user", "isp1", "--name", "noc-automation")
    assert made.code == 0, made.err
    secret = made.out.strip()
    assert secret.startswith("vpnreg_") and "\n" not in secret
    assert "user isp1, role isp" in made.err and "shown only once" in made.err
    gateway = registry("tokens", "create", "--role", "gateway", "--name", "gw-1")
    assert gateway.code == 0, gateway.err

    listed = registry("tokens", "list")
    assert listed.code == 0, listed.err
    assert secret not in listed.out and gateway.out.strip() not in listed.out
    rows = [line.split("\t") for line in listed.out.splitlines()]
    assert [r[:4] for r in rows] == [
        ["1", "isp", "noc-automation", "user isp1"],
        ["2", "gateway", "gw-1", "user -"],
    ]
    assert [r[-2:] for r in rows] == [["expires never", "active"]] * 2

    with sqlite3.connect(tmp_path / "registry.db") as db:
        user_id, role = db.execute("SELECT user_id, role FROM api_tokens WHERE id = 1").fetchone()
        expected = db.execute("SELECT id FROM users WHERE username = 'isp1'").fetchone()[0]
    assert (user_id, role) == (expected, "isp")

    revoked = registry("tokens", "revoke", "1")
    assert (revoked.code, revoked.out.strip()) == (0, "token 1 (noc-automation) revoked")
    active = registry("tokens", "list", "--active").out.splitlines()
    assert [line.split("\t")[0] for line in active] == ["2"]


@pytest.mark.parametrize(
    "args",
    [
        ("--role", "gateway", "--user", "isp1", "--name", "x"),
        ("--name", "x"),
    ],
    ids=["role-and-user", "neither"],
)
def test_exactly_one_of_role_and_user_or_usage_error(registry: Run, args: tuple[str, ...]) -> None:
    result = registry("tokens", "create", *args)
    assert result.code == 2
    assert result.err_lines == ["vpnreg: give exactly one of --role and --user"]
    assert result.out == ""
    assert registry("tokens", "list").out == ""


def test_an_unknown_user_gets_no_token(registry: Run) -> None:
    result = registry("tokens", "create", "--user", "mallory", "--name", "x")
    assert result.code == 1
    assert len(result.err_lines) == 1 and "mallory" in result.err
    assert result.out == ""


def test_a_token_with_an_expiry_lists_it(registry: Run) -> None:
    made = registry("tokens", "create", "--user", "alice", "--name", "ci", "--expires-days", "30")
    assert made.code == 0, made.err
    assert ", expires 20" in made.err
    fields = registry("tokens", "list").out.strip().split("\t")
    assert fields[-2].startswith("expires 20") and fields[-1] == "active"
    bad = registry("tokens", "create", "--role", "gateway", "--name", "x", "--expires-days", "0")
    assert bad.code == 2
