"""A refused setting stops every command with one line naming its variable (exit 2)."""

from __future__ import annotations

from tests.cli.conftest import Run


def test_a_refused_read_url_is_named_in_one_line(run: Run) -> None:
    result = run(
        "lookup",
        "192.0.2.1",
        VPNREG_DATABASE_READ_URL="postgresql+psycopg://vpnreg@db-replica/vpnreg",
    )
    assert result.code == 2
    assert result.err_lines == [
        "vpnreg: settings: VPNREG_DATABASE_READ_URL: needs VPNREG_DATABASE_URL on PostgreSQL: "
        "a replica streams from a PostgreSQL primary (SQLite has none)"
    ]


def test_every_refused_setting_is_named(run: Run) -> None:
    result = run("lookup", "192.0.2.1", VPNREG_MAX_PREFIX_V4="99", VPNREG_FEED_MAX_DELTAS="0")
    assert result.code == 2
    assert result.err_lines == [
        "vpnreg: settings: VPNREG_MAX_PREFIX_V4: Input should be less than or equal to 32; "
        "VPNREG_FEED_MAX_DELTAS: Input should be greater than or equal to 1"
    ]
