"""`vpnreg db upgrade`: create or migrate the registry's database."""

from __future__ import annotations

import typer

from vpnreg.cli.runtime import load_settings

db_app = typer.Typer(help="The registry's database.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade() -> None:
    """Create the database or migrate it to the newest schema (VPNREG_DATABASE_URL)."""
    from vpnreg.registry.db import current_revision
    from vpnreg.registry.db import upgrade as run_upgrade

    settings = load_settings()
    before = current_revision(settings.database_url)
    run_upgrade(settings.database_url)
    after = current_revision(settings.database_url)
    state = "already at" if before == after else f"migrated from {before or 'empty'} to"
    typer.echo(f"database {state} revision {after}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
