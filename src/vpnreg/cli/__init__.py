"""The `vpnreg` command: one Typer app over every part of the system.

Exit codes: 0 ok, 1 refused (validation, state, conflict), 2 usage. Errors are one line on stderr,
never a traceback.
"""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from vpnreg.cli.runtime import EXIT_REFUSED, EXIT_USAGE, CliError, say_error

app = typer.Typer(
    name="vpnreg",
    help="Register VPN endpoints and enforce the signed allowlist at gateways.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Register VPN endpoints and enforce the signed allowlist at gateways."""


def _register_commands() -> None:
    # Each module adds its own commands; imports inside them stay lazy so that
    # `vpnreg lookup` does not pay for NFStream or uvicorn.
    from vpnreg.cli import classify, serve

    for module in (classify, serve):
        module.register(app)


_register_commands()


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
    except typer.Abort:
        say_error("aborted")
        sys.exit(EXIT_REFUSED)
    except TyperException as err:
        # Typer's own copy of click's errors: usage errors carry exit code 2.
        format_message = getattr(err, "format_message", None)
        say_error(format_message() if callable(format_message) else str(err))
        sys.exit(int(getattr(err, "exit_code", EXIT_USAGE)))
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
