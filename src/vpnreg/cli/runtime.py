"""What every CLI command shares: settings, the clock, a database session, and one-line errors."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from pydantic import ValidationError

from vpnreg.clock import Clock, SystemClock
from vpnreg.settings import Settings

#: Exit codes of the CLI contract.
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An error to report as one line on stderr, with the exit code of the contract."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    raise CliError(message, code)


def say_error(message: str) -> None:
    """Print one error line on stderr (newlines folded, so each error stays one line)."""
    line = " ".join(str(message).split())
    typer.echo(f"vpnreg: {line}", err=True)


def load_settings() -> Settings:
    """The settings from the environment; a bad value is a usage error naming its variable
    (exit 2, one line), not an internal error."""
    try:
        return Settings()
    except ValidationError as err:
        fail(f"settings: {settings_problems(err)}", EXIT_USAGE)


def settings_problems(err: ValidationError) -> str:
    """Each refused setting as `VPNREG_NAME: why`, joined with "; "."""
    problems = []
    for error in err.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"VPNREG_{name}: {message}" if name else message)
    return "; ".join(problems)


def clock() -> Clock:
    return SystemClock()


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
