"""One classification pass over the nDPI corpus, shared by every golden test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.golden.corpus import classify_corpus


@pytest.fixture(scope="session")
def corpus_dir(shared_dir: Path) -> Path:
    return shared_dir / "corpus" / "ndpi"


@pytest.fixture(scope="session")
def corpus_rows(corpus_dir: Path) -> list[dict[str, Any]]:
    return classify_corpus(corpus_dir)
