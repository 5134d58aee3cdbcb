"""The public lookup's in-memory index (services.lookup_index) answers as the SQL lookup does.

A registry with prefix-bound registrations (IPv4 and IPv6, one with peers, one revoked) and
subscriber-bound ones whose ISP bound addresses with CGNAT port ranges, whole addresses and an
IPv6 prefix (one binding stopped, two ending within the hour, one of a subscriber with no
registration) is published once; then, for many random addresses, ports and moments in the hours
after the publish, the index's answer equals `services.lookup`'s, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.registry import flow
from tests.registry.conftest import World
from tests.registry.test_bindings import ev, report
from vpnreg.clock import FrozenClock
from vpnreg.core.ipspace import parse_address
from vpnreg.registry import services
from vpnreg.registry.services.feed import publish_detailed
from vpnreg.registry.services.lookup_index import (
    LookupIndex,
    LookupIndexHolder,
    build_lookup_index,
)

#: Where the registrations and bindings below live; addresses are drawn mostly from these.
SPACES = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/28"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/47"),
    ipaddress.ip_network("2001:db8:5::/55"),
)
#: The bound addresses themselves (a random draw in the spaces above rarely hits one).
BOUND = ("198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.100.10", "2001:db8:5::9")
#: Ports at and around the bound ranges' edges, and a few others.
EDGE_PORTS = (0, 1, 1023, 1024, 1500, 2047, 2048, 3071, 3072, 4095, 4096, 65535)


def _registry(
    session: Session, world: World, config: services.ServiceConfig, now: dt.datetime
) -> LookupIndex:
    flow.approved(session, world, config, now, [("192.0.2.0/26", [])])
    flow.approved(session, world, config, now, [("192.0.2.64/27", ["203.0.113.0/28"])], bank=True)
    flow.approved(session, world, config, now, [("192.0.2.192/28", [])], bank=True)
    flow.approved(session, world, config, now, [("2001:db8:1::/48", [])])
    revoked = flow.approved(session, world, config, now, [("192.0.2.128/26", [])], bank=True)
    flow.act(
        "revoke",
        session,
        application_id=revoked.id,
        actor=world.regulator,
        now=now,
        config=config,
        reason="test",
    )
    for subscriber in ("SUB-1", "SUB-2", "SUB-3"):
        flow.approved(session, world, config, now, [], subscriber_id=subscriber)
    hour = now + dt.timedelta(hours=1)
    report(
        session,
        world,
        config,
        now,
        # one CGNAT address shared by four subscribers (one with no registration)
        ev("start", "SUB-1", "a", address="198.51.100.7", ports=(1024, 2047)),
        ev("start", "SUB-2", "b", address="198.51.100.7", ports=(2048, 3071), until=hour),
        ev("start", "SUB-7", "c", address="198.51.100.7", ports=(3072, 4095)),
        ev("start", "SUB-3", "d", address="198.51.100.7", ports=(0, 1023)),
        ev("start", "SUB-1", "e", address="198.51.100.8", until=hour),
        ev("start", "SUB-2", "f", address="198.51.100.9", ports=(1024, 2047)),
        ev("start", "SUB-3", "g", address="2001:db8:5::/56"),
        ev("start", "SUB-3", "h", address="198.51.100.10", ports=(4096, 8191)),
    )
    report(session, world, config, now, ev("stop", "SUB-3", "h"))
    history = publish_detailed(session, now=now, config=config).history
    return build_lookup_index(session, history)


def _address(space: int, offset: int) -> str:
    network = SPACES[space]
    return str(network.network_address + offset % network.num_addresses)


def test_the_index_answers_as_sql_for_random_addresses_ports_and_moments(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    published = clock.now()
    index = _registry(session, world, config, published)
    checked = {"registered": 0, "bound": 0}

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        address=st.one_of(
            st.builds(_address, st.integers(0, len(SPACES) - 1), st.integers(0, 2**80)),
            st.sampled_from(BOUND),
            st.ip_addresses().map(str),
        ),
        port=st.one_of(st.none(), st.sampled_from(EDGE_PORTS), st.integers(0, 65535)),
        later=st.integers(0, 3 * 3600),
    )
    def same_answer(address: str, port: int | None, later: int) -> None:
        now = published + dt.timedelta(seconds=later)
        expected = services.lookup(session, address=address, now=now, config=config, port=port)
        assert index.lookup(parse_address(address), port=port, now=now) == expected
        checked["registered"] += expected.registered
        checked["bound"] += expected.binding_ports is not None

    same_answer()
    # the draw reached both kinds of registered answer, not only "not registered"
    assert checked["registered"] > 20 and checked["bound"] > 10


def test_every_edge_of_the_cgnat_address_answers_as_sql(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    published = clock.now()
    index = _registry(session, world, config, published)
    for seconds in (0, 3599, 3600, 7200):
        now = published + dt.timedelta(seconds=seconds)
        for address in ("198.51.100.7", "198.51.100.8", "198.51.100.10", "192.0.2.20"):
            for port in (None, *EDGE_PORTS):
                expected = services.lookup(
                    session, address=address, now=now, config=config, port=port
                )
                assert index.lookup(parse_address(address), port=port, now=now) == expected
    # SUB-2's binding ended at the hour: from then on its ports are not registered
    ended = index.lookup(
        parse_address("198.51.100.7"), port=2500, now=published + dt.timedelta(hours=1)
    )
    assert ended is not None and ended.registered is False
    whole = index.lookup(parse_address("192.0.2.20"), port=4242, now=published)
    assert whole is not None and whole.prefix == "192.0.2.0/26" and whole.binding_ports is None


def test_a_registration_revoked_after_the_publish_sends_the_question_to_sql(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.approved(session, world, config, now, [("192.0.2.0/26", [])])
    history = publish_detailed(session, now=now, config=config).history
    flow.act(
        "revoke",
        session,
        application_id=app.id,
        actor=world.regulator,
        now=now,
        config=config,
        reason="test",
    )
    # built after the revocation: the feed still lists it, the details no longer do
    index = build_lookup_index(session, history)
    assert index.lookup(parse_address("192.0.2.1"), port=None, now=now) is None
    assert services.lookup(session, address="192.0.2.1", now=now, config=config).registered is False
    # an address no entry covers is still answered
    answer = index.lookup(parse_address("192.0.2.200"), port=None, now=now)
    assert answer is not None and answer.registered is False


def test_a_lookups_own_build_during_a_rebuild_leaves_the_older_index_in_use(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    """A rebuild begun after a publish and a lookup's own build may overlap: the first to end
    must not say that nothing is being built, or the lookups meanwhile would queue behind the
    rebuild instead of answering from the index before it."""
    flow.approved(session, world, config, clock.now(), [("192.0.2.0/24", [])], bank=True)
    first = publish_detailed(session, now=clock.now(), config=config).history
    holder = LookupIndexHolder()
    older = holder.current(first, session)
    assert older is not None and holder.building() is None
    holder.note_asked()
    assert holder.begin_rebuild()  # the feed moved; the app's rebuild is under way
    assert holder.building() is older
    flow.approved(session, world, config, clock.now(), [("198.51.100.0/24", [])], bank=True)
    second = publish_detailed(session, now=clock.now(), config=config).history
    newer = holder.current(second, session)  # a lookup built the newer state itself meanwhile
    assert newer is not None and newer is not older
    assert holder.building() is newer  # the rebuild begun has not ended yet
    holder.end_rebuild()
    assert holder.building() is None
