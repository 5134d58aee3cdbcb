"""The lab fixtures: one lab and its tunnels per session, a fresh nftables back end per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.lab.netlab import Lab, Tunnel, missing_requirements
from vpnreg.agent.nft import NftablesBackend, SubprocessNft


@dataclass(frozen=True)
class Tunnels:
    wireguard: Tunnel
    openvpn_udp: Tunnel
    openvpn_tcp: Tunnel

    def all(self) -> tuple[Tunnel, ...]:
        return (self.wireguard, self.openvpn_udp, self.openvpn_tcp)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    missing = missing_requirements()
    if missing:
        pytest.fail(f"the lab needs {', '.join(missing)}")
    the_lab = Lab()
    try:
        the_lab.up()
        the_lab.http_server()
        yield the_lab
    finally:
        problems = the_lab.close()
    assert not problems, f"lab teardown left things behind: {problems}"


@pytest.fixture(scope="session")
def tunnels(lab: Lab) -> Tunnels:
    made = Tunnels(lab.wireguard_up(), lab.openvpn_up("udp"), lab.openvpn_up("tcp"))
    for tunnel in made.all():
        assert lab.tunnel_works(tunnel), f"{tunnel.name} does not come up"
    return made


@pytest.fixture
def gw(lab: Lab, tunnels: Tunnels) -> Iterator[NftablesBackend]:
    """The nftables back end in GW, started; stopped (table removed) after the test."""
    backend = NftablesBackend(SubprocessNft(prefix=lab.netns_exec(lab.ns_gw)))
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()
    # the next test starts from working tunnels (TCP may need a retransmission to recover)
    for tunnel in tunnels.all():
        assert lab.tunnel_works(tunnel, within_s=15), f"{tunnel.name} did not recover"
