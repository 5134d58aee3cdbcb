"""`vpnreg demo`: load the demo data (idempotent) and print the demo logins."""

from __future__ import annotations

import typer

from vpnreg.cli.registry_context import open_registry
from vpnreg.cli.runtime import fail


def demo() -> None:
    """Load fictional organisations and ~200 applications in every state; print the logins."""
    from vpnreg.demo import DEMO_PASSWORD, load_demo

    with open_registry() as reg:
        if not reg.settings.allow_documentation_prefixes:
            fail("the demo uses documentation prefixes: set VPNREG_ALLOW_DOCUMENTATION_PREFIXES=1")
        if reg.settings.is_production:
            fail("refusing to load demo data into a production registry")
        report = load_demo(reg.session, config=reg.config, now=reg.now())
    if report.created:
        states = ", ".join(f"{n} {s}" for s, n in sorted(report.applications.items()))
        typer.echo(f"demo data loaded: {sum(report.applications.values())} applications ({states})")
    else:
        typer.echo("demo data already loaded")
    staff = [login for login in report.logins if not login.username.startswith("applicant")]
    applicants = [login for login in report.logins if login.username.startswith("applicant")]
    typer.echo(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
    for login in staff:
        typer.echo(f"  {login.username:<12} {login.role:<12} {login.of}")
    if applicants:
        typer.echo(
            f"  {applicants[0].username} .. {applicants[-1].username}: applicants, "
            "one per organisation"
        )


def register(app: typer.Typer) -> None:
    app.command()(demo)
