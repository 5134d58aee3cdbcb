"""The `vpnreg` command: one Typer app over every part of the system.

Exit codes: 0 ok, 1 refused (validation, state, conflict), 2 usage. Errors are one line on stderr,
never a traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from vpnreg.cli.runtime import EXIT_REFUSED, EXIT_USAGE, CliError, say_error

app = typer.Typer(
    name="vpnreg",
    help="Register VPN endpoints and enforce the signed allowlist at gateways.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _domain_errors() -> tuple[type[Exception], ...]:
    """Exceptions whose message is meant for the user: reported in one line, exit 1."""
    from vpnreg.core.ipspace import PrefixError
    from vpnreg.core.review import PermissionDenied, TransitionError

    return (PrefixError, TransitionError, PermissionDenied)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and turns every error into one line on stderr."""
    try:
        result = app(args=argv, standalone_mode=False)
    except CliError as err:
        say_error(str(err))
        sys.exit(err.code)
    except click.UsageError as err:
        say_error(err.format_message())
        sys.exit(EXIT_USAGE)
    except click.ClickException as err:
        say_error(err.format_message())
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        say_error("aborted")
        sys.exit(EXIT_REFUSED)
    except KeyboardInterrupt:
        say_error("interrupted")
        sys.exit(130)
    except Exception as err:
        if isinstance(err, _domain_errors()):
            say_error(str(err))
            sys.exit(EXIT_REFUSED)
        say_error(f"internal error: {type(err).__name__}: {err}")
        sys.exit(70)
    sys.exit(result if isinstance(result, int) else 0)
