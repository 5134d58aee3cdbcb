"""Quoting what someone typed in a message without repeating all of it.

A refusal names the bad input so a person can find it, but echoing a 10 MB string back three
times turned one bad request into a 31 MB answer (issue 16). Every message that quotes input
quotes an excerpt.
"""

from __future__ import annotations

#: Characters of input a message quotes at most.
EXCERPT_CHARS = 60


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` as is when short, else its first `limit` characters, an ellipsis and the length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def quoted(text: str, limit: int = EXCERPT_CHARS) -> str:
    """repr() of the excerpt, for messages that quote input."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
