"""The file `vpnreg apply` reads: an application in YAML, checked by a pydantic model.

The documented form (README): the organisation and the ISP by name, and `prefixes`, each item a
prefix or a mapping with `prefix` and `peers` (the API's PrefixIn, so both front doors accept
the same shape and limits). The shape is checked here, naming the file and the field; what the
prefixes mean (valid, allowed, not overlapping) is checked by the registry's service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from vpnreg.cli.runtime import EXIT_USAGE, fail
from vpnreg.registry.schemas import MAX_PREFIXES, PrefixIn
from vpnreg.validation import location, problem


def _prefix_item(value: object) -> object:
    """A bare prefix is the prefix with any peer; `peers:` left empty (YAML null) is any peer."""
    if isinstance(value, str):
        return {"prefix": value}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (k == "peers" and v is None)}
    raise PydanticCustomError(
        "prefix_item",
        "must be a prefix or a mapping with prefix and peers (got {got})",
        {"got": repr(value)},
    )


class ApplicationFile(BaseModel):
    """An application as `vpnreg apply` takes it."""

    # YAML reads `organisation: 1984` as a number; a name is what was meant.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    organisation: str = Field(min_length=1)
    isp: str = Field(min_length=1)
    prefixes: list[Annotated[PrefixIn, BeforeValidator(_prefix_item)]] = Field(
        max_length=MAX_PREFIXES
    )
    #: false keeps the application a draft, as --draft does.
    submit: bool = True

    def prefix_requests(self) -> list[tuple[str, list[str]]]:
        """The prefixes as the registry's create_application takes them."""
        return [(item.prefix, list(item.peers)) for item in self.prefixes]


def load_application_file(path: Path) -> ApplicationFile:
    """The application in the YAML file at `path`; anything else fails the command in one line.

    An unreadable file is a usage error (exit 2); a file that is not a valid application is
    refused (exit 1) with every problem on the same line: "FILE: FIELD: problem; FIELD: ...".
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        fail(f"{path}: cannot read ({err.strerror})", EXIT_USAGE)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        fail(f"{path}: not valid YAML ({' '.join(str(err).split())})")
    if not isinstance(data, dict):
        fail(f"{path}: expected a mapping with organisation, isp and prefixes")
    try:
        return ApplicationFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{location(e['loc'])}: {problem(e)}" for e in exc.errors())
        fail(f"{path}: {problems}")
