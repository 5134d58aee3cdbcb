"""The verdict log: one JSON line per VPN flow verdict, flushed when written, rotated, pruned.

Only VPN flows and unconfirmed ones (verdict `unconfirmed`: VPN-like evidence the classifier
could not confirm, passed) are written, and only metadata: the fields of
`vpnreg classify --format jsonl` plus the time, the verdict, the action, the policy rule that
matched (`rule`), the registration id and the feed serial. The classifier's rule is
`classification_rule`, as in classify's output. Nothing of the payload exists here to be written
(the flow plugin keeps none).

Rotation: the live file `NAME.jsonl` is renamed to `NAME.YYYYMMDDTHHMMSSZ.jsonl` (the rotation
time, UTC, from the clock) when it reaches `rotate_bytes` or when a line of a new UTC day is
written. Retention: rotated files whose rotation time is older than `retention_days` are deleted
at every rotation, at start and on reload. File names, not file-system times, carry the age, so
the behaviour follows the injected clock.

A full or failing disk never stops enforcement: a line that cannot be written is cut back off
the file (so the log stays whole JSON lines), counted, and reported once on the agent's log;
when writing works again the log says how many verdicts went unrecorded, and carries on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vpnreg.agent.flows import FlowRecord
from vpnreg.clock import Clock
from vpnreg.core.classify import Classification
from vpnreg.core.policy import Decision

DEFAULT_RETENTION_DAYS = 30
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
_STAMP = "%Y%m%dT%H%M%SZ"
_STAMP_RE = re.compile(r"\d{8}T\d{6}Z")
#: Verdict logs hold addresses of people's machines: owner and group only.
_FILE_MODE = 0o640
_LOG = logging.getLogger(__name__)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def verdict_line(
    *,
    record: FlowRecord,
    classification: Classification,
    decision: Decision,
    source: str,
    time: dt.datetime,
) -> dict[str, Any]:
    """One verdict log object: classify's jsonl fields (same names, same order) and the verdict."""
    flow = record.features
    return {
        "file": source,
        "src_ip": flow.src_ip,
        "src_port": flow.src_port,
        "dst_ip": flow.dst_ip,
        "dst_port": flow.dst_port,
        "ip_protocol": flow.protocol,
        "application": flow.application_name,
        "category": flow.category_name,
        "confidence": flow.confidence,
        "vpn": classification.vpn,
        "vpn_protocol": classification.vpn_protocol.value,
        "basis": classification.basis,
        "classification_rule": classification.rule,
        "handover": record.handover.value,
        "packets_to_verdict": record.packets_to_verdict,
        "ms_to_verdict": record.ms_to_verdict,
        "time": format_time(time),
        "verdict": decision.verdict.value,
        "action": decision.action.value,
        "rule": decision.rule.value,
        "registration_id": decision.registration_id,
        "feed_serial": decision.feed_serial,
    }


class VerdictLog:
    """Append-only JSONL file with size/day rotation and retention by days."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self.retention_days = retention_days
        self.rotate_bytes = rotate_bytes
        self._check_limits()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._day: dt.date | None = None
        self._size = 0
        #: Verdicts not recorded since writing last failed (0 while the log is healthy).
        self.unrecorded = 0
        self._open()
        self.prune()

    def _check_limits(self) -> None:
        if self.retention_days < 1:
            raise ValueError("verdict retention must be at least one day")
        if self.rotate_bytes < 1024:
            raise ValueError("verdict rotation size must be at least 1024 bytes")

    def configure(self, *, retention_days: int, rotate_bytes: int) -> None:
        """New limits (on reload); prunes at once with the new retention."""
        self.retention_days, self.rotate_bytes = retention_days, rotate_bytes
        self._check_limits()
        self.prune()

    def _open(self) -> None:
        # Unbuffered: each line is one write(2), so nothing is held back to fail later.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _FILE_MODE)
        self._size = os.lseek(self._fd, 0, os.SEEK_END)
        self._day = _first_day(self.path) if self._size else None

    def write(self, line: Mapping[str, Any]) -> None:
        """Append one line; never raises for a full or failing disk (see the module docs)."""
        now = self._clock.now()
        data = (json.dumps(line, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")
        try:
            if self._fd is None:
                self._open()  # reopening failed before (a full disk at rotation)
            if self._size and (
                self._size + len(data) > self.rotate_bytes
                or self._day != now.astimezone(dt.UTC).date()
            ):
                self.rotate()
            self._append(data)
        except OSError as exc:
            self._unrecorded(exc)
            return
        if self.unrecorded:
            _LOG.warning(
                "verdict log %s: writing again; %d verdicts were not recorded",
                self.path,
                self.unrecorded,
            )
            self.unrecorded = 0
        self._size += len(data)
        if self._day is None:
            self._day = now.astimezone(dt.UTC).date()

    def _append(self, data: bytes) -> None:
        assert self._fd is not None
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            if done:  # part of the line reached the file: cut it back to whole lines
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
            raise

    def _unrecorded(self, exc: OSError) -> None:
        if not self.unrecorded:
            _LOG.error(
                "verdict log %s: cannot write (%s); verdicts go unrecorded until it can, "
                "enforcement goes on",
                self.path,
                exc.strerror or exc,
            )
        self.unrecorded += 1

    def rotate(self) -> Path | None:
        """Rename the live file aside (if it holds anything) and start a new one."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        target: Path | None = None
        if self.path.exists() and self.path.stat().st_size:
            stamp = self._clock.now().astimezone(dt.UTC).strftime(_STAMP)
            target = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
            n = 1
            while target.exists():
                target = self.path.with_name(f"{self.path.stem}.{stamp}-{n}{self.path.suffix}")
                n += 1
            self.path.rename(target)
        self._open()
        self.prune()
        return target

    def rotated(self) -> list[tuple[dt.datetime, Path]]:
        """Rotated files with their rotation times, oldest first."""
        found = []
        pattern = re.compile(
            re.escape(self.path.stem) + r"\.(" + _STAMP_RE.pattern + r")(?:-\d+)?"
            + re.escape(self.path.suffix) + "$"
        )  # fmt: skip
        for candidate in self.path.parent.iterdir():
            match = pattern.match(candidate.name)
            if match:
                when = dt.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=dt.UTC)
                found.append((when, candidate))
        return sorted(found)

    def prune(self) -> list[Path]:
        """Delete rotated files older than the retention; returns what was deleted."""
        cutoff = self._clock.now() - dt.timedelta(days=self.retention_days)
        deleted = []
        for when, path in self.rotated():
            if when < cutoff:
                path.unlink(missing_ok=True)
                deleted.append(path)
        return deleted

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _first_day(path: Path) -> dt.date | None:
    """The UTC day of the first line of an existing log (None if it cannot be read)."""
    try:
        with path.open(encoding="utf-8") as fh:
            first = json.loads(fh.readline())
        return dt.datetime.fromisoformat(str(first["time"]).replace("Z", "+00:00")).date()
    except (OSError, ValueError, KeyError, TypeError):
        return None
