"""The lean meter flow (vpnreg.agent.leanflow) hands over exactly what plain plugin mode does."""

from __future__ import annotations

from pathlib import Path

import nfstream
import pytest
from nfstream import meter

from vpnreg.agent import leanflow
from vpnreg.agent.flows import iter_flows


def corpus_files(shared_dir: Path) -> list[Path]:
    corpus = shared_dir / "corpus" / "ndpi"
    files = sorted(p for p in corpus.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert len(files) >= 80
    return files


@pytest.mark.slow
def test_every_corpus_capture_gives_the_same_records_in_both_modes(shared_dir: Path) -> None:
    differing = []
    total = 0
    for path in corpus_files(shared_dir):
        lean = list(iter_flows(path, include_continuations=True, lean=True))
        plain = list(iter_flows(path, include_continuations=True, lean=False))
        total += len(lean)
        if lean != plain:
            differing.append(path.name)
    assert differing == []
    assert total > 2000  # every continuation included, so more than the classified flows


def test_install_swaps_the_meters_flow_class_and_uninstall_restores_it() -> None:
    try:
        assert leanflow.install()
        assert meter.NFlow is leanflow.LeanFlow
        assert leanflow.install()  # idempotent
    finally:
        leanflow.uninstall()
    assert meter.NFlow is nfstream.flow.NFlow


def test_an_unchecked_nfstream_release_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nfstream, "__version__", "7.0.0")
    leanflow.uninstall()
    assert not leanflow.supported()
    assert not leanflow.install()
    assert meter.NFlow is nfstream.flow.NFlow
