"""The conntrack capture as data: what it installs, in which order, and what it removes.

The kernel behaviour (copies reach the agent, bulk does not): tests/lab/test_ctcapture_lab.py.
"""

from __future__ import annotations

import pytest

from vpnreg.agent.ctcapture import (
    BLOCKED_MARK,
    CaptureInstaller,
    ConntrackCapture,
    FakeIp,
    Shard,
)
from vpnreg.agent.nft import FakeNft, NftError, NftTable


def test_one_table_per_family_copies_the_first_packets_of_each_direction() -> None:
    script = ConntrackCapture("gw-a", packets=12).render()
    assert script.count("table ip vpnreg_capture0 {") == 1
    assert script.count("table ip6 vpnreg_capture0 {") == 1
    for rule in (
        'iifname "gw-a" goto sample',
        'oifname "gw-a" goto sample',
        "ct direction original ct original packets <= 12 goto copy",
        "ct direction reply ct reply packets <= 12 goto copy",
        f"ct mark and {BLOCKED_MARK:#x} != 0 goto copy",
        'iifname "vpnreg-cap0p" drop',
    ):
        assert script.count(rule) == 2, rule  # once per family
    assert 'dup to 192.0.2.1 device "vpnreg-cap0"' in script
    assert 'dup to fe80::1 device "vpnreg-cap0"' in script
    assert "symhash" not in script  # one process: every connection is its own


def test_a_shard_copies_only_its_share_to_its_own_link() -> None:
    capture = ConntrackCapture("gw-a", shard=Shard(1, 3))
    script = capture.render()
    assert script.count("symhash mod 3 != 1 return") == 2
    assert (capture.device, capture.peer) == ("vpnreg-cap1", "vpnreg-cap1p")
    assert capture.tables == ("ip vpnreg_capture1", "ip6 vpnreg_capture1")


@pytest.mark.parametrize(("index", "of"), [(2, 2), (-1, 2), (0, 0)], ids=["high", "neg", "none"])
def test_a_shard_outside_its_range_is_refused(index: int, of: int) -> None:
    with pytest.raises(ValueError, match="need 0 <= shard < shards"):
        Shard(index, of)


def test_start_replaces_leftovers_and_stop_removes_table_then_link() -> None:
    nft, ip = FakeNft(), FakeIp()
    installer = CaptureInstaller(ConntrackCapture("gw-a"), nft=nft, ip=ip)
    installer.start()
    assert ip.calls[0] == ("link", "delete", "vpnreg-cap0")  # a killed agent's link
    assert ip.calls[1] == ("link", "add", "vpnreg-cap0", "type", "veth", "peer", "name",
                           "vpnreg-cap0p")  # fmt: skip
    assert nft.scripts[0].startswith(
        "add table ip vpnreg_capture0\ndelete table ip vpnreg_capture0\n"
        "add table ip6 vpnreg_capture0\ndelete table ip6 vpnreg_capture0\n"
    )
    installer.stop()
    assert nft.scripts[1] == (
        "add table ip vpnreg_capture0\ndelete table ip vpnreg_capture0\n"
        "add table ip6 vpnreg_capture0\ndelete table ip6 vpnreg_capture0\n"
    )
    assert ip.calls[-1] == ("link", "delete", "vpnreg-cap0")


def test_a_refused_table_leaves_no_link_behind() -> None:
    nft, ip = FakeNft(fail_with=NftError("nft -f -", 1, "no dup")), FakeIp()
    installer = CaptureInstaller(ConntrackCapture("gw-a"), nft=nft, ip=ip)
    with pytest.raises(NftError):
        installer.start()
    assert ip.calls[-1] == ("link", "delete", "vpnreg-cap0")


def test_the_enforcement_table_marks_what_it_drops_only_for_the_conntrack_capture() -> None:
    plain = NftTable().render()
    assert "ct mark" not in plain
    marked = NftTable(blocked_mark=BLOCKED_MARK).render()
    drops = [line.strip() for line in marked.splitlines() if line.strip().endswith("drop")]
    assert len(drops) == 12
    assert all("ct mark set ct mark or 0x40000000 counter drop" in d for d in drops)
    # a packet that was not dropped clears the bit: a lifted block stops the copies
    assert "ct mark and 0x40000000 != 0 ct mark set ct mark and 0xbfffffff" in marked
