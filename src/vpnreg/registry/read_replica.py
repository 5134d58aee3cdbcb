"""The read replica: a PostgreSQL streaming standby that answers the public reads (ADR 0017).

`ReplicaDatabase` is a `Database` (unit_of_work) whose engine connects to the replica named by
`VPNREG_DATABASE_READ_URL`. Two things set it apart from the primary's:

- **Read-only sessions.** Every connection it makes starts with
  `default_transaction_read_only=on`, so a write that strays onto it fails loudly
  ("cannot execute INSERT in a read-only transaction"), on the replica as on the primary when
  it stands in (a hot standby refuses writes anyway; the option makes both cases one).
- **The primary stands in when the replica is unreachable.** A connection the replica refuses
  (stopped, restarting, not accepting connections yet) is opened to the primary instead,
  with a warning in the log and a count in `ReplicaHealth`; for `retry_s` after that, new
  connections go to the primary at once, and a pooled stand-in connection is replaced when
  it is checked out after that time, so the reads return to the replica by themselves. Only when the
  primary is unreachable too does a read fail (`Unavailable`, 503). A replica that answers
  but lags is not routed around: its lag is what its readers see (ADR 0017 "Lag").

Connections are made in SQLAlchemy's `do_connect` hook, so none of this costs a round trip
while the replica is up: the pool's pre-ping, which finds a dead connection, is the only check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, event, exc
from sqlalchemy.engine import Dialect, make_url

from vpnreg.registry.db import make_engine
from vpnreg.registry.services.unit_of_work import Database

__all__ = [
    "READ_APPLICATION_NAME",
    "REPLICA_RETRY_S",
    "ReadStatus",
    "ReplicaDatabase",
    "ReplicaHealth",
    "make_replica_engine",
]

_LOG = logging.getLogger(__name__)

#: After the replica refused a connection, reads go to the primary for this long before the
#: replica is tried again (seconds).
REPLICA_RETRY_S = 5.0
#: How long connecting to the replica may take before the primary stands in (seconds): a replica
#: host that drops packets must not hold a public request for the driver's default (forever).
REPLICA_CONNECT_TIMEOUT_S = 3
#: The application_name of the read connections (pg_stat_activity), unless the URL names one.
READ_APPLICATION_NAME = "vpnreg-read"
#: Every read connection's sessions are read-only (libpq `options`).
_READ_ONLY = "-c default_transaction_read_only=on"
#: Where a pooled connection records which server it reached ("replica" or "primary").
_SOURCE = "vpnreg_read_source"

Source = Literal["replica", "primary"]


@dataclass(frozen=True)
class ReadStatus:
    """Where the public reads go now, and how often the primary stood in."""

    #: The server the last read connection reached.
    serving: Source
    #: Read connections opened to the primary because the replica refused one.
    fallbacks: int
    #: The replica's last connection error, until it accepts one again.
    last_error: str | None

    def to_json(self) -> dict[str, object]:
        """What `/healthz` shows anyone: not the error, which names hosts and sockets (it is
        in the server's log)."""
        return {"serving": self.serving, "fallbacks": self.fallbacks}


class ReplicaHealth:
    """Whether to try the replica, and the count of connections the primary took over
    (thread-safe; the pool connects from any request thread)."""

    def __init__(self, retry_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._serving: Source = "replica"
        self._fallbacks = 0
        self._last_error: str | None = None
        self._retry_at = 0.0

    def may_try_replica(self) -> bool:
        """True unless the replica refused a connection less than `retry_s` ago."""
        with self._lock:
            return self._clock() >= self._retry_at

    def replica_connected(self) -> None:
        with self._lock:
            recovered = self._serving == "primary"
            self._serving = "replica"
            self._last_error = None
            self._retry_at = 0.0
        if recovered:
            _LOG.warning("read replica reachable again: the public reads go to it")

    def replica_refused(self, error: BaseException) -> None:
        message = " ".join(str(error).split())
        with self._lock:
            first = self._serving == "replica"
            self._serving = "primary"
            self._last_error = message
            self._retry_at = self._clock() + self._retry_s
        if first:
            _LOG.warning(
                "read replica unreachable (%s): the public reads go to the primary, "
                "retrying the replica every %.0f s",
                message,
                self._retry_s,
            )

    def fell_back(self) -> None:
        with self._lock:
            self._fallbacks += 1

    def status(self) -> ReadStatus:
        with self._lock:
            return ReadStatus(self._serving, self._fallbacks, self._last_error)


def _read_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` (libpq keywords) with read-only sessions, a name and a connect timeout added
    (what the URL sets itself is kept, its `options` extended)."""
    out = dict(params)
    options = str(out.get("options") or "").strip()
    out["options"] = f"{options} {_READ_ONLY}".strip()
    out.setdefault("application_name", READ_APPLICATION_NAME)
    out.setdefault("connect_timeout", REPLICA_CONNECT_TIMEOUT_S)
    return out


def make_replica_engine(read_url: str, *, primary_url: str, health: ReplicaHealth) -> Engine:
    """An engine for the replica at `read_url` whose connections are read-only and fall back
    to the primary at `primary_url` (connected through the replica's driver) while the replica
    refuses them."""
    engine = make_engine(read_url)
    primary = make_url(primary_url).set(drivername=engine.url.drivername)
    primary_args, primary_params = engine.dialect.create_connect_args(primary)
    stand_in = (list(primary_args), _read_params(primary_params))

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Dialect, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        if health.may_try_replica():
            try:
                connection = dialect.connect(*cargs, **_read_params(cparams))
            except dialect.loaded_dbapi.OperationalError as err:
                health.replica_refused(err)
            else:
                health.replica_connected()
                record.info[_SOURCE] = "replica"
                return connection
        # The primary's refusal is the read's error (Unavailable through make_engine's hook).
        connection = dialect.connect(*stand_in[0], **stand_in[1])
        health.fell_back()
        record.info[_SOURCE] = "primary"
        return connection

    @event.listens_for(engine, "checkout")
    def _back_to_the_replica(_dbapi: Any, record: Any, _proxy: Any) -> None:
        # A stand-in connection is given up once the replica may be tried again: the pool
        # then connects afresh (do_connect above), to the replica if it accepts.
        if record.info.get(_SOURCE) == "primary" and health.may_try_replica():
            raise exc.DisconnectionError("the read replica may be back: reconnecting")

    return engine


class ReplicaDatabase(Database):
    """The registry's read replica at `url`, standing in the primary at `primary_url` while
    the replica is unreachable; `health` tells where the reads go."""

    def __init__(self, url: str, *, primary_url: str, retry_s: float = REPLICA_RETRY_S) -> None:
        super().__init__(url)
        self.primary_url = primary_url
        self.health = ReplicaHealth(retry_s)

    def _make_engine(self) -> Engine:
        return make_replica_engine(self.url, primary_url=self.primary_url, health=self.health)
