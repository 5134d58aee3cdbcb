"""The settings' own checks: VPNREG_DATABASE_READ_URL names a PostgreSQL replica beside a
PostgreSQL primary, never the primary itself (ADR 0017)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vpnreg.settings import Settings

PG = "postgresql+psycopg://vpnreg@db-primary/vpnreg"


@pytest.mark.parametrize(
    ("primary", "replica", "refusal"),
    [
        pytest.param(
            "sqlite:///registry.db", "postgresql+psycopg://vpnreg@db-replica/vpnreg",
            "needs VPNREG_DATABASE_URL on PostgreSQL", id="sqlite-primary",
        ),
        pytest.param(PG, "sqlite:///replica.db", "must be a PostgreSQL URL", id="sqlite-replica"),
        pytest.param(PG, PG, "names the primary", id="the-primary-itself"),
        pytest.param(
            PG, "postgresql://vpnreg@db-primary/vpnreg", "names the primary",
            id="the-primary-by-another-driver",
        ),
        pytest.param(PG, "not a url", "must be a PostgreSQL URL", id="no-url"),
    ],
)  # fmt: skip
def test_settings_refuse_a_read_url_that_is_no_replica(
    primary: str, replica: str, refusal: str
) -> None:
    with pytest.raises(ValidationError, match=refusal) as refused:
        Settings(database_url=primary, database_read_url=replica)
    assert refused.value.errors()[0]["loc"] == ("database_read_url",)


def test_settings_take_a_replica_beside_a_postgresql_primary_or_none() -> None:
    replica = "postgresql+psycopg://vpnreg@db-replica/vpnreg"
    assert Settings(database_url=PG, database_read_url=replica).database_read_url == replica
    assert Settings(database_url=PG, database_read_url="").database_read_url is None
    assert Settings(database_url="sqlite:///registry.db").database_read_url is None
