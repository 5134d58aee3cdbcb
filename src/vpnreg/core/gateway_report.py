"""Gateway reports: what a gateway tells the registry about its verdicts, aggregated by the hour.

A report carries counts only, never a flow: per hour, per registration id x VPN protocol x
verdict; for unregistered traffic per domestic /24 (IPv4) or /48 (IPv6) x protocol; everything
else (not domestic, unconfirmed without a registration) per protocol x verdict alone. No port and
no foreign address is ever part of a key, so none can leave the gateway in a report.

Pure: the caller passes the hour (`hour_of(now)`), the decisions and the home prefixes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from vpnreg.core.policy import Address, Decision, FlowKey, Network, Verdict
from vpnreg.core.protocols import VpnProtocol

#: Prefix lengths an unregistered domestic address is counted under, per IP version.
PREFIX_LENGTH = {4: 24, 6: 48}
#: Protocol names a count may carry (the classifier's VPN protocols).
PROTOCOLS = frozenset(p.value for p in VpnProtocol if p is not VpnProtocol.NONE)
#: Verdicts a count may carry (not-vpn flows are not counted).
VERDICTS = frozenset(v.value for v in Verdict if v is not Verdict.NOT_VPN)
#: The verdict of a flow a gateway blocks (a dry-run gateway: would have blocked), whether or
#: not a registration was involved; the statistics and the analytics count blocks by it.
BLOCKED_VERDICT = Verdict.UNREGISTERED.value


class ReportError(ValueError):
    """A report value that cannot be used; the message says which and why."""


@dataclass(frozen=True, order=True)
class CountKey:
    """One row of a report's counts. At most one of registration_id and prefix is set."""

    hour: dt.datetime
    protocol: str
    verdict: str
    registration_id: int | None = None
    prefix: str | None = None


def hour_of(moment: dt.datetime) -> dt.datetime:
    """The UTC hour holding `moment` (aware)."""
    if moment.tzinfo is None:
        raise ReportError("time must carry its time zone")
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def domestic_prefix(address: Address) -> str:
    """The /24 (IPv4) or /48 (IPv6) holding `address`, as text."""
    length = PREFIX_LENGTH[address.version]
    return str(ipaddress.ip_network(f"{address}/{length}", strict=False))


def counted_under(network: Network) -> list[str]:
    """The /24s (/48s) under which a report counts unregistered flows of `network`'s addresses:
    the one holding it, or every one inside it when it is wider."""
    length = PREFIX_LENGTH[network.version]
    if network.prefixlen >= length:
        return [str(network.supernet(new_prefix=length))]
    return [str(n) for n in network.subnets(new_prefix=length)]


def check_prefix(text: str) -> str:
    """`text` if it is a /24 IPv4 or /48 IPv6 network in canonical form, else ReportError."""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ReportError(f"prefix {text!r}: {exc}") from None
    if network.prefixlen != PREFIX_LENGTH[network.version] or str(network) != text:
        raise ReportError(f"prefix {text!r}: must be a canonical /24 (IPv4) or /48 (IPv6)")
    return text


def count_key(
    *,
    decision: Decision,
    flow: FlowKey,
    vpn_protocol: str,
    home: Iterable[Network],
    hour: dt.datetime,
) -> CountKey | None:
    """The report row a decided flow counts under (None for a flow that is not a VPN's)."""
    if decision.verdict is Verdict.NOT_VPN:
        return None
    verdict = decision.verdict.value
    if decision.registration_id is not None:
        return CountKey(hour, vpn_protocol, verdict, registration_id=decision.registration_id)
    if decision.verdict is Verdict.UNREGISTERED:
        nets = tuple(home)
        domestic = next((a for a in (flow.src_ip, flow.dst_ip) if any(a in n for n in nets)), None)
        if domestic is not None:
            return CountKey(hour, vpn_protocol, verdict, prefix=domestic_prefix(domestic))
    return CountKey(hour, vpn_protocol, verdict)


def tally(keys: Iterable[CountKey | None]) -> Counter[CountKey]:
    """Flows per row."""
    return Counter(k for k in keys if k is not None)


def count_rows(counts: Counter[CountKey]) -> list[dict[str, object]]:
    """The report body's `counts`: one object per row, in a stable order."""
    rows: list[dict[str, object]] = []
    for key in sorted(counts, key=_sort_key):
        row: dict[str, object] = {
            "hour": key.hour.strftime("%Y-%m-%dT%H:00:00Z"),
            "protocol": key.protocol,
            "verdict": key.verdict,
        }
        if key.registration_id is not None:
            row["registration_id"] = key.registration_id
        if key.prefix is not None:
            row["prefix"] = key.prefix
        row["flows"] = counts[key]
        rows.append(row)
    return rows


def _sort_key(key: CountKey) -> tuple[dt.datetime, str, str, int, str]:
    return (key.hour, key.protocol, key.verdict, key.registration_id or 0, key.prefix or "")


#: Most count rows one report may hold; 10,000 rows of about 130 bytes fit the 2 MiB body cap.
MAX_ROWS = 10_000
MODES = frozenset({"dry-run", "nftables"})


@dataclass(frozen=True)
class FeedApplied:
    session_id: str
    serial: int
    set_hash: str


@dataclass(frozen=True)
class Report:
    """A gateway report as the registry takes it (after the web layer parsed its JSON)."""

    report_id: str
    gateway_id: str
    created: dt.datetime
    mode: str
    feed: FeedApplied | None
    counts: tuple[tuple[CountKey, int], ...]


def check_report(report: Report) -> None:
    """Refuse (ReportError) a report whose counts break the rules of this module: hours on the
    hour, known protocols and verdicts, a prefix only for unregistered traffic and never with a
    registration, no row twice, at least one flow per row."""
    if report.mode not in MODES:
        raise ReportError(f"mode must be one of {', '.join(sorted(MODES))}")
    if len(report.counts) > MAX_ROWS:
        raise ReportError(f"a report holds at most {MAX_ROWS} count rows")
    seen: set[CountKey] = set()
    for index, (key, flows) in enumerate(report.counts):
        where = f"counts[{index}]"
        if key.hour.tzinfo is None or hour_of(key.hour) != key.hour:
            raise ReportError(f"{where}.hour: must be a whole UTC hour")
        if key.protocol not in PROTOCOLS:
            raise ReportError(f"{where}.protocol: unknown VPN protocol {key.protocol!r}")
        if key.verdict not in VERDICTS:
            raise ReportError(f"{where}.verdict: unknown verdict {key.verdict!r}")
        if key.prefix is not None:
            if key.registration_id is not None:
                raise ReportError(f"{where}: a row has a registration_id or a prefix, not both")
            if key.verdict != Verdict.UNREGISTERED.value:
                raise ReportError(f"{where}.prefix: only unregistered traffic is counted by prefix")
            try:
                check_prefix(key.prefix)
            except ReportError as exc:
                raise ReportError(f"{where}.{exc}") from None
        if flows < 1:
            raise ReportError(f"{where}.flows: must be at least 1")
        if key in seen:
            raise ReportError(f"{where}: the same row twice")
        seen.add(key)
