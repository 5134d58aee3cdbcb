"""The `vpnreg` command: one Typer app over every part of the system.

Exit codes: 0 ok, 1 refused (validation, state, conflict), 2 usage. Errors are one line on stderr,
never a traceback.

Each command lives in a small module with a `register(app)` function. `main()` imports only the
module of the command being run, so a gateway running `vpnreg gateway` never loads the registry's
SQLAlchemy stack, and `vpnreg lookup` never loads NFStream.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.exceptions import TyperException

from vpnreg.cli.runtime import EXIT_REFUSED, EXIT_USAGE, CliError, say_error

#: Top-level command name -> the module (in vpnreg.cli) that registers it.
COMMANDS = {
    "db": "database",
    "demo": "demo",
    "users": "directory",
    "orgs": "directory",
    "isps": "directory",
    "sector-bodies": "directory",
    "apply": "workflow",
    "review": "workflow",
    "appeal": "workflow",
    "withdraw": "workflow",
    "renew": "workflow",
    "amend": "workflow",
    "amend-protocols": "workflow",
    "lookup": "records",
    "explain": "explain",
    "import": "records",
    "audit": "audit",
    "feed": "feed",
    "classify": "classify",
    "gateway": "gateway",
    "serve": "serve",
    "tokens": "tokens",
    "outbox": "outbox",
    "bindings": "bindings",
    "maintenance": "bindings",
    "radius": "radius",
    "report": "report",
    "analytics": "analytics",
}


def build_app(command: str | None = None) -> typer.Typer:
    """The Typer app with every command, or only with `command`'s module when it is known."""
    app = typer.Typer(
        name="vpnreg",
        help="Register VPN endpoints and enforce the signed allowlist at gateways.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        # Plain help: Typer's rich panels print every option's type, so flags read
        # `--help <bool>` as if they took a value; the plain formatter leaves flags bare.
        rich_markup_mode=None,
    )

    @app.callback()
    def _root() -> None:
        """Register VPN endpoints and enforce the signed allowlist at gateways."""

    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"vpnreg.cli.{name}").register(app)
    return app


def __getattr__(name: str) -> Any:
    # `from vpnreg.cli import app` gives the complete app (for tests and documentation).
    if name == "app":
        return build_app()
    raise AttributeError(name)


def _domain_errors() -> tuple[type[Exception], ...]:
    """Exceptions whose message is meant for the user: reported in one line, exit 1."""
    from vpnreg.core.ipspace import PrefixError
    from vpnreg.core.review import PermissionDenied, TransitionError

    errors: tuple[type[Exception], ...] = (PrefixError, TransitionError, PermissionDenied)
    if "vpnreg.registry.errors" in sys.modules:
        errors += (sys.modules["vpnreg.registry.errors"].RegistryError,)
    return errors


def _command_of(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _is_missing_command(err: TyperException) -> bool:
    # Click's NoArgsIsHelpError, matched by name as Typer itself does: its message is the whole
    # help text, which folded into one error line read as an empty or garbled `vpnreg: ` line.
    return type(err).__name__ == "NoArgsIsHelpError" and getattr(err, "ctx", None) is not None


def _say_missing_command(err: TyperException) -> None:
    """A group named without a command: its help, then one line saying what is missing."""
    ctx = err.ctx  # type: ignore[attr-defined]
    typer.echo(ctx.get_help(), err=True)
    commands = ctx.command.list_commands(ctx)
    which = f" ({', '.join(commands)})" if len(commands) <= 8 else ""
    say_error(f"'{ctx.command_path}' needs a command{which}; see the help above")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and turns every error into one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = build_app(_command_of(args))(args=args, prog_name="vpnreg", standalone_mode=False)
    except CliError as err:
        say_error(str(err))
        sys.exit(err.code)
    except typer.Abort:
        say_error("aborted")
        sys.exit(EXIT_REFUSED)
    except TyperException as err:
        if _is_missing_command(err):
            _say_missing_command(err)
            sys.exit(EXIT_USAGE)
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
