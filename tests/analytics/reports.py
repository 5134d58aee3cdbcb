"""A small week of gateway reports, stored through the registry's real service, with the answers
the analytics queries must give on it (worked out by hand below, not by the code under test).

Three days, 2026-03-01..03, three gateways:
- gw-north applies the newest serial of session S each day (10, 11, 12), in nftables mode;
- gw-south is held on serial 10 all along (the stale gateway of "registered but still blocked");
- gw-trial runs in dry-run mode with no feed on the first day, then serial 11 on the third;
  one of its reports (day 2) carries no counts at all: it still says which serial it applies.
Registration 41 is blocked by gw-south (its serial predates the registration) and passes at
gw-north; registration 42 is blocked by gw-trial in dry run. Unregistered traffic is counted by
prefix and some flows are not domestic. One report of gw-south for an hour of day 1 arrives late,
on day 3 (its spool held it), so day 1's counts gain rows after day 1's reports were written.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from vpnreg.core.gateway_report import CountKey, FeedApplied, Report
from vpnreg.registry.services.gateway_reports import store_report

SESSION = "a1" * 16
DAY1, DAY2, DAY3 = (dt.date(2026, 3, d) for d in (1, 2, 3))


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)


def _feed(serial: int | None) -> FeedApplied | None:
    return None if serial is None else FeedApplied(SESSION, serial, f"{serial:064x}")


def blocked(
    hour: dt.datetime,
    protocol: str,
    *,
    registration_id: int | None = None,
    prefix: str | None = None,
) -> CountKey:
    return CountKey(hour, protocol, "unregistered", registration_id, prefix)


def passed(hour: dt.datetime, protocol: str, registration_id: int) -> CountKey:
    return CountKey(hour, protocol, "registered", registration_id=registration_id)


def elsewhere(hour: dt.datetime, protocol: str) -> CountKey:
    return CountKey(hour, protocol, "not-domestic")


def store(
    session: Session,
    gateway: str,
    received: dt.datetime,
    serial: int | None,
    counts: tuple[tuple[CountKey, int], ...] = (),
    *,
    mode: str = "nftables",
) -> str:
    """Store one report through the real service (as POST /api/v1/gateway-reports does)."""
    report_id = uuid.uuid4().hex
    report = Report(report_id, gateway, received, mode, _feed(serial), counts)
    assert store_report(session, report=report, token_name=gateway, now=received)
    return report_id


def store_week(session: Session) -> None:
    """Store every report described in the module docstring."""
    h1, h2, h3 = at(DAY1, 9), at(DAY2, 14), at(DAY3, 20)
    # gw-north: newest serial, registration 41 passes, some unregistered traffic by prefix
    store(session, "gw-north", at(DAY1, 10), 10, (
        (passed(h1, "wireguard", 41), 30),
        (blocked(h1, "wireguard", prefix="198.51.100.0/24"), 4),
        (blocked(h1, "openvpn", prefix="203.0.113.0/24"), 2),
        (elsewhere(h1, "openvpn"), 7),
    ))  # fmt: skip
    store(session, "gw-north", at(DAY2, 15), 11, (
        (passed(h2, "wireguard", 41), 25),
        (blocked(h2, "ipsec", prefix="2001:db8:1::/48"), 6),
    ))  # fmt: skip
    store(session, "gw-north", at(DAY3, 21), 12, ((blocked(h3, "wireguard"), 1),))
    # gw-south: held on serial 10, blocks registration 41
    store(session, "gw-south", at(DAY1, 10, 5), 10, (
        (blocked(h1, "wireguard", registration_id=41), 5),
        (blocked(h1, "openvpn", prefix="198.51.100.0/24"), 3),
    ))  # fmt: skip
    store(session, "gw-south", at(DAY2, 15, 5), 10, (
        (blocked(h2, "wireguard", registration_id=41), 8),
    ))  # fmt: skip
    store(
        session,
        "gw-south",
        at(DAY3, 21, 5),
        10,
        ((blocked(h3, "wireguard", registration_id=41), 2),),
    )
    # the late one: counted in day 1's hour 22, sent on day 3
    store(session, "gw-south", at(DAY3, 8), 10, (
        (blocked(at(DAY1, 22), "wireguard", registration_id=41), 9),
        (blocked(at(DAY1, 22), "openvpn", prefix="203.0.113.0/24"), 1),
    ))  # fmt: skip
    # gw-trial: dry run, no feed on day 1, a report without counts on day 2, serial 11 on day 3
    store(session, "gw-trial", at(DAY1, 11), None, (
        (blocked(h1, "openvpn", prefix="203.0.113.0/24"), 5),
    ), mode="dry-run")  # fmt: skip
    store(session, "gw-trial", at(DAY2, 16), 11, mode="dry-run")
    store(session, "gw-trial", at(DAY3, 22), 11, (
        (blocked(h3, "wireguard", registration_id=42), 4),
        (passed(h3, "openvpn", 41), 3),
    ), mode="dry-run")  # fmt: skip


#: Count rows per counts partition (by the hour's day) and reports per reports partition (by
#: the arrival day).
COUNT_ROWS = {DAY1: 9, DAY2: 3, DAY3: 4}
REPORT_ROWS = {DAY1: 3, DAY2: 3, DAY3: 4}

#: blocks-per-protocol: (day, protocol, blocked flows, gateways that blocked).
BLOCKS_PER_PROTOCOL = [
    # day 1: openvpn 2 (north) + 3 + 1 (south, one late) + 5 (trial); wireguard 4 + 5 + 9
    (DAY1, "openvpn", 11, 3),
    (DAY1, "wireguard", 18, 2),
    (DAY2, "ipsec", 6, 1),
    (DAY2, "wireguard", 8, 1),
    (DAY3, "wireguard", 7, 3),  # 1 (north) + 2 (south) + 4 (trial)
]

#: registered-but-blocked: (registration, gateway, blocked flows, first day, last day, lowest
#: serial, highest serial, flows blocked in dry run).
REGISTERED_BUT_BLOCKED = [
    (41, "gw-south", 24, DAY1, DAY3, 10, 10, 0),  # 5 + 9 (late) + 8 + 2
    (42, "gw-trial", 4, DAY3, DAY3, 11, 11, 4),
]

#: gateway-lag: (day, gateway, session, reports, lowest serial, highest serial, newest serial
#: any gateway reported in the session that day, lag).
GATEWAY_LAG = [
    (DAY1, "gw-north", SESSION, 1, 10, 10, 10, 0),
    (DAY1, "gw-south", SESSION, 1, 10, 10, 10, 0),
    (DAY1, "gw-trial", None, 1, None, None, None, None),
    (DAY2, "gw-north", SESSION, 1, 11, 11, 11, 0),
    (DAY2, "gw-south", SESSION, 1, 10, 10, 11, 1),
    (DAY2, "gw-trial", SESSION, 1, 11, 11, 11, 0),
    (DAY3, "gw-north", SESSION, 1, 12, 12, 12, 0),
    (DAY3, "gw-south", SESSION, 2, 10, 10, 12, 2),  # the late report arrived on day 3 too
    (DAY3, "gw-trial", SESSION, 1, 11, 11, 12, 1),
]

EXPECTED = {
    "blocks-per-protocol": BLOCKS_PER_PROTOCOL,
    "registered-but-blocked": REGISTERED_BUT_BLOCKED,
    "gateway-lag": GATEWAY_LAG,
}
