"""Help and usage messages of the real `vpnreg` script (issue 15 item 12): flags shown bare, a
group named without its command prints its help and one line saying what is missing, and a
bad address is explained once."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Run

#: Commands with flags of their own besides --help, groups, and the root.
HELPS = [
    ("lookup",),
    ("feed", "export"),
    ("review", "verify"),
    ("serve",),
    ("feed",),
    ("users",),
    ("analytics",),
    ("analytics", "export"),
    ("analytics", "gateway-lag"),
    (),
]


@pytest.mark.parametrize("command", HELPS, ids=lambda c: " ".join(("vpnreg", *c)))
def test_help_shows_flags_without_a_value_type(run: Run, command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.code == 0, result.err
    assert "--help" in result.out
    assert "<bool>" not in result.out


def test_lookup_help_shows_the_json_flag_bare(run: Run) -> None:
    result = run("lookup", "--help")
    json_line = next(line for line in result.out.splitlines() if "--json" in line)
    assert json_line.split()[:2] == ["--json", "One"]


@pytest.mark.parametrize("group", [("feed",), ("users",), ()], ids=["feed", "users", "vpnreg"])
def test_a_group_without_its_command_prints_its_help_and_says_what_is_missing(
    run: Run, group: tuple[str, ...]
) -> None:
    result = run(*group)
    assert result.code == 2
    assert result.err.startswith("Usage: vpnreg")
    last = result.err_lines[-1]
    assert last.startswith(f"vpnreg: '{' '.join(('vpnreg', *group))}' needs a command")
    if group == ("feed",):
        assert "(export, keygen, pull, publish, snapshot, mode)" in last
    # The help came whole, not folded into the error line.
    assert "Commands:" in result.err_lines


def test_a_bad_address_is_explained_once(run: Run) -> None:
    result = run("lookup", "garbage")
    assert result.code == 2
    assert result.err_lines == ["vpnreg: 'garbage' is not a valid IP address"]
