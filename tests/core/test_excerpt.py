"""Messages quote an excerpt of bad input, never all of it."""

from __future__ import annotations

import pytest

from vpnreg.core.excerpt import EXCERPT_CHARS, excerpt, quoted
from vpnreg.core.ipspace import PrefixError, parse_address, parse_prefix


def test_short_text_is_kept_and_long_text_cut_with_its_length() -> None:
    assert excerpt("abc") == "abc"
    assert quoted("abc") == "'abc'"
    long = "x" * 10_000
    assert excerpt(long) == "x" * EXCERPT_CHARS + "... (10000 characters)"
    assert quoted(long).startswith("'xxx") and quoted(long).endswith("(10000 characters)")


@pytest.mark.parametrize("parse", [parse_address, parse_prefix])
def test_a_huge_bad_address_gives_a_short_message(parse: object) -> None:
    with pytest.raises(PrefixError) as caught:
        parse("garbage" * 20_000)  # type: ignore[operator]
    assert len(caught.value.message) < 200
    assert caught.value.message.count("garbage") < 20
