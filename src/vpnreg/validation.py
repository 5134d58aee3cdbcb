"""Pydantic's validation errors as short human text, for files people write by hand.

Pydantic's own messages ("Input should be a valid integer [type=int_type, ...]") speak of
inputs and types; someone editing a TOML or YAML file wants the key and what to write instead.
Callers put `location` and `problem` together with the file or option the value came from.
"""

from __future__ import annotations

from pydantic_core import ErrorDetails

#: Inputs longer than this are not echoed back: the location already says which value it is.
_MAX_ECHO = 60

_FIXED = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
#: Their message is the whole story, already written for people (our own validators).
_VERBATIM = frozenset({"value_error", "assertion_error"})


def location(loc: tuple[int | str, ...]) -> str:
    """("prefixes", 1, "peers", 0) as "prefixes[1].peers[0]"; "" for the whole document."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def problem(error: ErrorDetails) -> str:
    """What is wrong with the value, in a few words, with the value itself when it is short."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _VERBATIM:
        return str(ctx.get("error", error["msg"]))
    if kind in ("missing", "extra_forbidden"):
        return _FIXED[kind]
    if kind in _FIXED:
        text = _FIXED[kind]
    elif kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        bound = ctx[name]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "> 0", not "> 0.0", for a float field declared gt=0
        text = f"must be {sign} {bound}"
    elif kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        text = "must not be empty"
    elif kind == "string_too_short":
        text = f"must be at least {ctx['min_length']} characters"
    elif kind == "string_too_long":
        text = f"must be at most {ctx['max_length']} characters"
    elif kind == "too_short":
        text = f"must have at least {ctx['min_length']} items"
    elif kind == "too_long":
        text = f"must have at most {ctx['max_length']} items"
    elif kind == "enum":
        text = f"must be one of {ctx['expected']}"
    else:
        # Our own PydanticCustomError messages land here, and so would a type not listed above.
        msg = error["msg"]
        return msg[:1].lower() + msg[1:]
    return text + _echo(error.get("input"))


def _echo(value: object) -> str:
    if isinstance(value, str | int | float | bool):
        shown = repr(value)
        if len(shown) <= _MAX_ECHO:
            return f" (got {shown})"
    elif isinstance(value, list | tuple | dict) and not value:
        return f" (got {value!r})"
    return ""
