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
