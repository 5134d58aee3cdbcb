"""Where `vpnreg radius` listens and how it names a packet's source (no sockets)."""

from __future__ import annotations

import pytest

from vpnreg.cli.radius import parse_listen
from vpnreg.cli.runtime import EXIT_USAGE, CliError
from vpnreg.radius.server import client_address


@pytest.mark.parametrize(
    ("source", "client"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),  # a v4 client seen by a dual-stack socket
        ("2001:DB8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_sources_are_named_as_clients_are_registered(source: str, client: str) -> None:
    assert client_address(source) == client


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:1813", ("127.0.0.1", 1813)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::]:1813", ("::", 1813)),
        ("[2001:db8::1]:1646", ("2001:db8::1", 1646)),
    ],
)
def test_listen_addresses(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize(
    "value", ["localhost", "1813", "127.0.0.1:", "127.0.0.1:70000", "bng:1813"]
)
def test_bad_listen_addresses_are_usage_errors(value: str) -> None:
    with pytest.raises(CliError) as refused:
        parse_listen(value)
    assert refused.value.code == EXIT_USAGE
