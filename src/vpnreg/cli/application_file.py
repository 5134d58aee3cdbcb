"""The file `vpnreg apply` reads: an application in YAML, checked by a pydantic model.

The documented form (README): the organisation and the ISP by name, and `prefixes`, each item a
prefix or a mapping with `prefix` and `peers` (the API's PrefixIn, so both front doors accept
the same shape and limits). The shape is checked here, naming the file and the field; what the
prefixes mean (valid, allowed, not overlapping) is checked by the registry's service.

The file is someone's input, so it is read with limits: at most MAX_FILE_BYTES, and no YAML
aliases (`&a` / `*a`), which an application never needs and which let a 1 kB file stand for
a structure of billions of items (it cost 4 GB and a 225 MB error line before this check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from vpnreg.cli.runtime import EXIT_USAGE, fail
from vpnreg.core.excerpt import excerpt
from vpnreg.registry.schemas import MAX_PREFIXES, PrefixIn, Protocols, SubscriberId
from vpnreg.validation import location, problem

#: An application of MAX_PREFIXES prefixes with 64 peers each is about 100 kB of YAML.
MAX_FILE_BYTES = 256 * 1024


#: libyaml's loader when PyYAML was built with it: the pure-Python one took 14 s for 1 MB.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> object:
    """Safe-load `text`, refusing aliases (found in a first pass over the parser's events)."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark is not None else "?"
            raise yaml.YAMLError(f"YAML aliases (*{event.anchor}) are not accepted (line {line})")
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def _prefix_item(value: object) -> object:
    """A bare prefix is the prefix with any peer; `peers:` left empty (YAML null) is any peer."""
    if isinstance(value, str):
        return {"prefix": value}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (k == "peers" and v is None)}
    # Name the type, and quote only a short excerpt: repr() of a big structure is itself the
    # cost (and the size of the error line).
    got = excerpt(repr(value)) if isinstance(value, int | float | bool) else type(value).__name__
    raise PydanticCustomError(
        "prefix_item",
        "must be a prefix or a mapping with prefix and peers (got {got})",
        {"got": got},
    )


class ApplicationFile(BaseModel):
    """An application as `vpnreg apply` takes it."""

    # YAML reads `organisation: 1984` as a number; a name is what was meant.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    organisation: str = Field(min_length=1)
    isp: str = Field(min_length=1)
    #: Prefix-bound: the prefixes. Subscriber-bound: `subscriber_id:` instead.
    prefixes: list[Annotated[PrefixIn, BeforeValidator(_prefix_item)]] = Field(
        default_factory=list, max_length=MAX_PREFIXES
    )
    subscriber_id: SubscriberId | None = None
    protocols: Protocols
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
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        fail(f"{path}: cannot read ({err.strerror})", EXIT_USAGE)
    if len(raw) > MAX_FILE_BYTES:
        fail(f"{path}: larger than {MAX_FILE_BYTES} bytes; an application file is far smaller")
    try:
        data = _load_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text (UTF-16 or binary?); save it as UTF-8")
    except yaml.YAMLError as err:
        fail(f"{path}: not valid YAML ({' '.join(str(err).split())})")
    if not isinstance(data, dict):
        fail(f"{path}: expected a mapping with organisation, isp and prefixes (or subscriber_id)")
    try:
        return ApplicationFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{location(e['loc'])}: {problem(e)}" for e in exc.errors())
        fail(f"{path}: {problems}")
