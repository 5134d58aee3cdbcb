"""Immediate mode for live captures: the setup_capture wrapper, where it applies, its install."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import nfstream.meter
import pytest
from _lib_engine import ffi, lib  # NFStream's engine: its ffi makes real pcap_t pointers

from tests.agent.pcapbuild import pcap, udp
from vpnreg.agent import flows, livecapture
from vpnreg.agent.livecapture import (
    INTERFACE_MODE,
    engine_set_immediate,
    immediate_setup_capture,
    install_immediate_mode,
)

HANDLE = 0x5EED0


class FakeSetImmediate:
    """Records pcap_set_immediate_mode calls and answers with `status` (or raises `error`)."""

    def __init__(self, status: int = 0, error: Exception | None = None) -> None:
        self.status, self.error = status, error
        self.calls: list[tuple[int, int]] = []

    def __call__(self, handle: int, on: int) -> int:
        self.calls.append((handle, on))
        if self.error is not None:
            raise self.error
        return self.status


def fake_setup_capture(capture: Any) -> Any:
    """Stands in for nfstream.engine.setup_capture (same parameters), returning `capture`."""

    def setup_capture(
        ffi: Any,
        lib: Any,
        source: str,
        snaplen: int,
        promisc: bool,
        mode: int,
        error_child: Any,
        group_id: int,
        socket_buffer_size: int,
    ) -> Any:
        return capture

    return setup_capture


def call(wrapped: Any, mode: int) -> Any:
    # positional, as nfstream.meter.meter_workflow calls it
    return wrapped(ffi, lib, "eth0", 1536, True, mode, ffi.new("char[256]"), 0, 0)


def test_live_capture_gets_immediate_mode_on_its_handle() -> None:
    capture = ffi.cast("pcap_t *", HANDLE)
    fake = FakeSetImmediate()
    wrapped = immediate_setup_capture(fake_setup_capture(capture), fake)
    assert call(wrapped, INTERFACE_MODE) == capture
    assert fake.calls == [(HANDLE, 1)]


def test_keyword_arguments_are_understood_too() -> None:
    capture = ffi.cast("pcap_t *", HANDLE)
    fake = FakeSetImmediate()
    wrapped = immediate_setup_capture(fake_setup_capture(capture), fake)
    wrapped(ffi=ffi, lib=lib, source="eth0", snaplen=1536, promisc=True, mode=INTERFACE_MODE,
            error_child=None, group_id=0, socket_buffer_size=0)  # fmt: skip
    assert fake.calls == [(HANDLE, 1)]


@pytest.mark.parametrize(
    ("mode", "capture"),
    [
        (0, ffi.cast("pcap_t *", HANDLE)),  # NFMode.SINGLE_FILE
        (2, ffi.cast("pcap_t *", HANDLE)),  # NFMode.MULTIPLE_FILES
        (INTERFACE_MODE, None),  # setup failed: NFStream reports the error
        (INTERFACE_MODE, ffi.NULL),
    ],
    ids=["single-file", "multiple-files", "live-setup-failed", "live-null-handle"],
)
def test_files_and_failed_setups_are_left_alone(mode: int, capture: Any) -> None:
    fake = FakeSetImmediate()
    wrapped = immediate_setup_capture(fake_setup_capture(capture), fake)
    assert call(wrapped, mode) is capture
    assert fake.calls == []


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        (FakeSetImmediate(status=-4), "returned -4"),  # PCAP_ERROR_ACTIVATED
        (FakeSetImmediate(error=OSError("boom")), "boom"),
    ],
    ids=["error-status", "call-raises"],
)
def test_a_failing_call_warns_and_keeps_the_capture(
    fake: FakeSetImmediate, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    capture = ffi.cast("pcap_t *", HANDLE)
    wrapped = immediate_setup_capture(fake_setup_capture(capture), fake)
    with caplog.at_level(logging.WARNING, logger=livecapture.__name__):
        assert call(wrapped, INTERFACE_MODE) == capture
    [warning] = caplog.records
    assert "1000 ms buffering" in warning.getMessage()
    assert message in warning.getMessage()


@pytest.fixture
def pristine_meter(monkeypatch: pytest.MonkeyPatch) -> Any:
    """nfstream.meter.setup_capture as NFStream ships it, restored after the test."""
    original = nfstream.meter.setup_capture
    monkeypatch.setattr(livecapture, "_installed", None)
    monkeypatch.setattr(nfstream.meter, "setup_capture", original)
    return original


def test_install_wraps_the_meters_setup_capture_once(pristine_meter: Any) -> None:
    fake = FakeSetImmediate()
    assert install_immediate_mode(loader=lambda: fake)
    wrapped = nfstream.meter.setup_capture
    assert wrapped is not pristine_meter
    assert wrapped.__wrapped__ is pristine_meter
    assert install_immediate_mode(loader=lambda: fake)
    assert nfstream.meter.setup_capture is wrapped  # not wrapped twice


def test_install_without_the_symbol_keeps_nfstream_as_it_is(pristine_meter: Any) -> None:
    assert not install_immediate_mode(loader=lambda: None)
    assert nfstream.meter.setup_capture is pristine_meter


class NoStreamer:
    """Stands in for NFStreamer: records that it was made and yields no flow."""

    made: ClassVar[list[str]] = []

    def __init__(self, *, source: str, **kw: Any) -> None:
        NoStreamer.made.append(source)

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def test_iter_flows_installs_the_wrapper_for_an_interface_only(
    pristine_meter: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flows, "NFStreamer", NoStreamer)
    NoStreamer.made.clear()
    capture_file = tmp_path / "one.pcap"
    frame = udp("192.0.2.1", 40000, "198.51.100.2", 53, b"x")
    capture_file.write_bytes(pcap([(1_700_000_000.0, frame)]))

    assert list(flows.iter_flows(capture_file)) == []
    assert nfstream.meter.setup_capture is pristine_meter

    assert list(flows.iter_flows("eth-lab0")) == []
    assert nfstream.meter.setup_capture.__wrapped__ is pristine_meter
    assert NoStreamer.made == [str(capture_file), "eth-lab0"]


def test_the_engine_exports_the_function_and_it_accepts_a_fresh_handle() -> None:
    """The real path: NFStream's engine creates a live handle (not activated, so no privileges
    needed) and pcap_set_immediate_mode from the same shared object accepts it."""
    set_immediate = engine_set_immediate()
    assert set_immediate is not None
    error = ffi.new("char[256]")
    capture = lib.capture_open(b"lo", INTERFACE_MODE, error, 0)
    assert capture != ffi.NULL, ffi.string(error)
    try:
        assert set_immediate(int(ffi.cast("uintptr_t", capture)), 1) == 0
    finally:
        lib.capture_close(capture)
