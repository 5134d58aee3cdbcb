"""The gateway's reports to the registry (docs/gateway.md, "Reports"; ADR 0010).

`Reporter.observe` adds a decided flow to the hourly counts (core.gateway_report, so only
aggregates exist here: no flow, port or foreign address is kept). Every `interval_s` the daemon
calls `tick`: the counts so far become one report with a fresh report id, written to the spool
(`STATE_DIR/reports/`, one file per report, written to a temporary name and renamed, so a crash
leaves whole files only), then every spooled report is sent, oldest first, through one
`ReportTransport`. A report is deleted once the registry took it (201) or already had it (200:
the report id makes a resend harmless); a refused one (4xx other than 401/403/408/429) is moved
aside to `reports/refused/` and logged, never retried; anything else (unreachable, 5xx, a
revoked token) leaves the spool as it is for the next tick. The spool holds at most
`max_spooled` reports: past that the oldest are dropped, with a warning.

Nothing on this path may stop enforcement: `tick` logs and swallows every error.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from vpnreg.core.feed import FeedState
from vpnreg.core.gateway_report import MAX_ROWS, CountKey, count_key, count_rows, hour_of
from vpnreg.core.policy import Decision, FlowKey, Network

_LOG = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 300.0
#: A week of reports at the default interval.
DEFAULT_MAX_SPOOLED = 2016
REPORTS_PATH = "/api/v1/gateway-reports"
_TIMEOUT_S = 10.0
#: Answers after which a report is sent again later (not the report's fault).
_RETRY_STATUSES = frozenset({401, 403, 408, 429})


class ReportTransport(Protocol):
    """Sends one report body; returns the HTTP status (raises OSError or httpx errors)."""

    def send(self, body: bytes) -> int: ...


class HttpTransport:
    """POSTs reports to the registry's API with the gateway token."""

    def __init__(
        self, base_url: str, token: str | None, *, client: httpx.Client | None = None
    ) -> None:
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._base = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=_TIMEOUT_S)

    def send(self, body: bytes) -> int:
        url = self._base + REPORTS_PATH
        return self._client.post(url, content=body, headers=self._headers).status_code

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class SendResult:
    sent: int
    refused: int
    pending: int


class Reporter:
    def __init__(
        self,
        *,
        gateway_id: str,
        spool_dir: Path,
        transport: ReportTransport,
        max_spooled: int = DEFAULT_MAX_SPOOLED,
    ) -> None:
        self.gateway_id = gateway_id
        self.spool = Path(spool_dir)
        self.transport = transport
        self.max_spooled = max_spooled
        self._counts: Counter[CountKey] = Counter()
        self._lock = threading.Lock()
        self._sequence = itertools.count()

    def observe(
        self,
        *,
        decision: Decision,
        flow: FlowKey,
        vpn_protocol: str,
        home: Iterable[Network],
        now: dt.datetime,
    ) -> None:
        key = count_key(
            decision=decision, flow=flow, vpn_protocol=vpn_protocol, home=home, hour=hour_of(now)
        )
        if key is not None:
            with self._lock:
                self._counts[key] += 1

    def take_reports(
        self, *, now: dt.datetime, feed: FeedState | None, mode: str
    ) -> list[dict[str, object]]:
        """The counts since the last report as report bodies (one, or more when the rows
        exceed what one report may hold); the counts start over."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        rows = count_rows(counts)
        chunks = [rows[i : i + MAX_ROWS] for i in range(0, len(rows), MAX_ROWS)] or [[]]
        return [self._body(now=now, feed=feed, mode=mode, rows=chunk) for chunk in chunks]

    def _body(
        self,
        *,
        now: dt.datetime,
        feed: FeedState | None,
        mode: str,
        rows: list[dict[str, object]],
    ) -> dict[str, object]:
        return {
            "report_id": uuid.uuid4().hex,
            "gateway_id": self.gateway_id,
            "created": now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "mode": mode,
            "feed": None
            if feed is None
            else {"session_id": feed.session_id, "serial": feed.serial, "set_hash": feed.set_hash},
            "counts": rows,
        }

    # -- spool -------------------------------------------------------------------------------------

    def spool_report(self, report: dict[str, object], *, now: dt.datetime) -> Path:
        self.spool.mkdir(parents=True, exist_ok=True)
        # Time, then this process's sequence: reports spooled within one clock tick (a coarse
        # or stepped clock) keep their order; the random report id alone would shuffle them.
        sequence = next(self._sequence)
        stamp = f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}"
        name = f"{stamp}-{sequence:010d}-{report['report_id']}.json"
        target = self.spool / name
        temp = self.spool / f".{name}.tmp"
        data = json.dumps(report, separators=(",", ":")).encode("ascii")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        self._bound()
        return target

    def spooled(self) -> list[Path]:
        if not self.spool.is_dir():
            return []
        return sorted(p for p in self.spool.iterdir() if p.suffix == ".json" and p.is_file())

    def _bound(self) -> None:
        waiting = self.spooled()
        for old in waiting[: max(0, len(waiting) - self.max_spooled)]:
            _LOG.warning("report spool full: dropping the oldest report %s", old.name)
            old.unlink(missing_ok=True)

    def send_spooled(self) -> SendResult:
        """Send spooled reports oldest first until one cannot be delivered."""
        sent = refused = 0
        waiting = self.spooled()
        for index, path in enumerate(waiting):
            body = path.read_bytes()
            try:
                status = self.transport.send(body)
            except (OSError, httpx.HTTPError) as exc:
                _LOG.warning(
                    "registry unreachable for reports (%s); %d kept", exc, len(waiting) - index
                )
                return SendResult(sent, refused, len(waiting) - index)
            if status in (200, 201):
                path.unlink(missing_ok=True)
                sent += 1
            elif 400 <= status < 500 and status not in _RETRY_STATUSES:
                aside = self.spool / "refused"
                aside.mkdir(exist_ok=True)
                os.replace(path, aside / path.name)
                _LOG.error("registry refused report %s (HTTP %d); moved aside", path.name, status)
                refused += 1
            else:
                _LOG.warning("report not taken (HTTP %d); %d kept", status, len(waiting) - index)
                return SendResult(sent, refused, len(waiting) - index)
        return SendResult(sent, refused, 0)

    def tick(self, *, now: dt.datetime, feed: FeedState | None, mode: str) -> SendResult | None:
        """One report: take, spool, send everything spooled. Never raises."""
        try:
            for report in self.take_reports(now=now, feed=feed, mode=mode):
                self.spool_report(report, now=now)
            return self.send_spooled()
        except Exception:
            _LOG.exception("gateway report failed; enforcement goes on")
            return None
