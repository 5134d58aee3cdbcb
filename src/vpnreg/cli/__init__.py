"""The `vpnreg` command: one Typer app over every part of the system.

Exit codes: 0 ok, 1 refused (validation, state, conflict), 2 usage. Errors are one line on stderr.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="vpnreg",
    help="Register VPN endpoints and enforce the signed allowlist at gateways.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def main() -> None:
    """Console-script entry point."""
    app()
