"""EntryTable.replace_registrations: the publisher's incremental step gives the set a full
recompute gives."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.feed.strategies import entry_sets
from vpnreg.core.feed import AllowlistEntry, EntryTable

END = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@given(before=entry_sets, after=entry_sets, data=st.data())
def test_replacing_some_registrations_equals_building_the_set_anew(
    before: list[AllowlistEntry], after: list[AllowlistEntry], data: st.DataObject
) -> None:
    # The registrations named get `after`'s entries; every other keeps `before`'s.
    ids = {e.registration_id for e in before + after}
    chosen = data.draw(st.sets(st.sampled_from(sorted(ids))) if ids else st.just(set[int]()))
    chosen |= {e.registration_id for e in after}
    expected = [e for e in before if e.registration_id not in chosen] + after
    replaced = EntryTable.from_entries(before).replace_registrations(
        chosen, EntryTable.from_entries(after)
    )
    assert replaced == EntryTable.from_entries(expected)
    assert dict(replaced.peers) == dict(EntryTable.from_entries(expected).peers)


def test_peers_of_a_dropped_registration_leave_with_it() -> None:
    net = ipaddress.ip_network
    with_peers = AllowlistEntry(
        prefix=net("198.51.100.0/24"),
        peers=(net("203.0.113.0/24"),),
        registration_id=7,
        valid_until=END,
    )
    other = dataclasses.replace(with_peers, prefix=net("192.0.2.0/24"), peers=(), registration_id=8)
    table = EntryTable.from_entries([with_peers, other])
    assert table.peers
    after = table.replace_registrations([7], EntryTable.empty())
    assert list(after) == [other]
    assert not after.peers


def test_an_entry_of_a_registration_not_named_is_refused() -> None:
    entry = AllowlistEntry(
        prefix=ipaddress.ip_network("192.0.2.0/24"),
        peers=(),
        registration_id=9,
        valid_until=END,
    )
    with pytest.raises(ValueError, match=r"\[9\]"):
        EntryTable.empty().replace_registrations([1], EntryTable.from_entries([entry]))
