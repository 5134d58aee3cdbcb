"""The accounting server: UDP in, bindings stored through report_events, Accounting-Response out.

Two threads. The receiving thread reads each datagram, drops it when its source is no
registered client (`unknown_client`), cannot be decoded or is not an Accounting-Request
(`malformed`), or its Request Authenticator (and Message-Authenticator, when present) does not
verify with that client's secret (`bad_authenticator`); a retransmission of a request seen in
the last 30 s is `duplicate` (RFC 5080 2.2.2: dropped while the first is being stored,
answered with the same response once it has been). A request reporting no binding
(Accounting-On/Off, ..., or a Status-Server, RFC 5997) or one that cannot be read as a binding
is answered at once; the others are queued.

The storing thread takes whatever is queued (up to MAX_EVENTS_PER_REPORT events), stores each
client's events with one report_events call (actor `radius:<client address>`), and only then
answers each request. An event refused by report_events (the CGNAT overlap rule, a malformed
field) is logged and counted, and its request still answered: the refusal is final, and an
unanswered request would be retransmitted by the NAS for ever. When storing fails (database
unreachable) nothing is answered, so the NAS retransmits, as RFC 2866 asks.

Counters are logged every `stats_interval` seconds and when the server stops.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from pyrad.dictionary import Dictionary
from pyrad.packet import AccountingRequest, AcctPacket, PacketError, StatusServer

from vpnreg.clock import Clock
from vpnreg.core.bindings import MAX_EVENTS_PER_REPORT, BindingEvent, EventResult
from vpnreg.core.radius_accounting import (
    IPV4_ATTRIBUTE,
    IPV6_ATTRIBUTES,
    SESSION_ATTRIBUTE,
    STATUS_ATTRIBUTE,
    AccountingError,
    ClientAttributes,
    DuplicateCache,
    accounting_record,
)
from vpnreg.registry.services.bindings import report_events
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.radius_clients import RadiusClientView, radius_clients
from vpnreg.registry.services.transaction import run_unit
from vpnreg.registry.services.unit_of_work import Database

_LOG = logging.getLogger("vpnreg.radius")

#: The largest RADIUS packet (RFC 2865 3, as raised by RFC 7930).
MAX_PACKET = 65535
#: The registered clients are read again at most this often, when a packet comes from an
#: unknown address or fails to verify (a client added or its secret changed meanwhile).
RELOAD_INTERVAL_S = 5.0
#: How long the receiving thread waits for a datagram before it looks at the stop flag.
_POLL_S = 0.2
#: A warning about one address's dropped packets is logged at most this often (a flood of
#: forged or misconfigured packets must not flood the log; the counters count every one).
WARNING_INTERVAL_S = 60.0

_Key = tuple[str, int, int, bytes]


@dataclass
class Counters:
    """What the server has seen: packets received, answered and dropped (and why), binding
    events stored and refused, requests that reported no binding."""

    received: int = 0
    answered: int = 0
    stored: int = 0
    refused: int = 0
    ignored: int = 0
    duplicate: int = 0
    bad_authenticator: int = 0
    unknown_client: int = 0
    malformed: int = 0
    failed: int = 0

    def line(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass(frozen=True)
class _Job:
    client: RadiusClientView
    source: Any  # the socket address the request came from (the answer goes there)
    key: _Key
    request: AcctPacket
    events: tuple[BindingEvent, ...]


def client_address(host: str) -> str:
    """A datagram's source as clients are registered: IPv4-mapped IPv6 as IPv4, no zone."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def decoded_attributes(
    request: AcctPacket, dictionary: Dictionary, client: RadiusClientView
) -> dict[str, list[object]]:
    """The attributes accounting_record reads, decoded; a name the dictionary lacks reads as
    absent. PacketError when a value cannot be decoded."""
    names = [STATUS_ATTRIBUTE, SESSION_ATTRIBUTE, IPV4_ATTRIBUTE, *IPV6_ATTRIBUTES]
    names.append(client.subscriber_attribute)
    if client.ports_attribute is not None:
        names.append(client.ports_attribute)
    found: dict[str, list[object]] = {}
    for name in names:
        if name not in dictionary.attributes or name not in request:
            continue
        try:
            found[name] = list(request[name])
        except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as exc:
            raise PacketError(f"{name} cannot be decoded: {exc}") from exc
    return found


class AccountingServer:
    """Serves one bound UDP socket until `stop` is set (see the module's docstring)."""

    def __init__(
        self,
        *,
        sock: socket.socket,
        database: Database,
        config: ServiceConfig,
        clock: Clock,
        dictionary: Dictionary,
        stats_interval: float = 60.0,
    ) -> None:
        self._sock = sock
        self._database = database
        self._config = config
        self._clock = clock
        self._dictionary = dictionary
        self._stats_interval = stats_interval
        self.counters = Counters()
        self._lock = threading.Lock()  # counters and the duplicate cache
        self._cache = DuplicateCache()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._clients: dict[str, RadiusClientView] = {}
        self._loaded_at = float("-inf")
        self._warned: dict[tuple[str, str], float] = {}

    # -- clients ---------------------------------------------------------------------------

    def load_clients(self) -> dict[str, RadiusClientView]:
        with self._database.session() as session:
            self._clients = radius_clients(session)
        self._loaded_at = time.monotonic()
        return self._clients

    def _reload_if_due(self) -> bool:
        if time.monotonic() - self._loaded_at < RELOAD_INTERVAL_S:
            return False
        try:
            self.load_clients()
        except Exception as exc:  # the database is away: keep the clients known so far
            _LOG.error("reading the RADIUS clients failed: %s", exc)
            self._loaded_at = time.monotonic()
            return False
        return True

    def _count(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self.counters, name, getattr(self.counters, name) + amount)

    # -- receiving -------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> Counters:
        """Receive until `stop` is set, then store what is queued and return the counters."""
        storer = threading.Thread(target=self._store_loop, name="vpnreg-radius-store")
        storer.start()
        self._sock.settimeout(_POLL_S)
        next_stats = time.monotonic() + self._stats_interval
        try:
            while not stop.is_set():
                try:
                    data, source = self._sock.recvfrom(MAX_PACKET)
                except TimeoutError:
                    data = None
                if data is not None:
                    try:
                        self._receive(data, source)
                    except Exception as exc:  # one bad packet or send never stops the server
                        self._count(malformed=1)
                        _LOG.error(
                            "dropped a packet from %s: %s: %s", source, type(exc).__name__, exc
                        )
                if time.monotonic() >= next_stats:
                    _LOG.info("counters: %s", self._snapshot().line())
                    next_stats = time.monotonic() + self._stats_interval
        finally:
            self._queue.put(None)
            storer.join()
        counters = self._snapshot()
        _LOG.info("stopped; counters: %s", counters.line())
        return counters

    def _snapshot(self) -> Counters:
        with self._lock:
            return Counters(**vars(self.counters))

    def _client(self, address: str, *, stale: bool) -> RadiusClientView | None:
        client = self._clients.get(address)
        if (client is None or stale) and self._reload_if_due():
            client = self._clients.get(address)
        return client

    def _receive(self, data: bytes, source: Any) -> None:
        self._count(received=1)
        try:
            address = client_address(str(source[0]))
        except ValueError:
            self._count(malformed=1)
            return
        client = self._client(address, stale=False)
        if client is None:
            self._count(unknown_client=1)
            self._warn(
                "unknown", address, "dropped a packet from %s: not a registered RADIUS client"
            )
            return
        request = self._verified(data, address, client)
        if request is None:
            return
        client = self._clients.get(address, client)
        key: _Key = (address, int(source[1]), int(request.id), bytes(request.authenticator))
        with self._lock:
            seen = self._cache.seen(key, time.monotonic())
            if seen is not None:
                self.counters.duplicate += 1
        if seen is not None:
            if seen[0] == "answered" and seen[1] is not None:
                self._sock.sendto(seen[1], source)
            return
        if request.code == StatusServer:
            # RFC 5997: a NAS asking whether the server is alive (its Message-Authenticator
            # verified above) gets an Accounting-Response; nothing to store.
            self._count(ignored=1)
            self._answer(request, source, key)
            return
        try:
            attributes = decoded_attributes(request, self._dictionary, client)
            record = accounting_record(
                attributes, ClientAttributes(client.subscriber_attribute, client.ports_attribute)
            )
        except (PacketError, AccountingError) as exc:
            _LOG.warning(
                "refused an Accounting-Request from %s (ISP %s, id %s): %s",
                address,
                client.isp_name,
                request.id,
                exc,
            )
            self._count(refused=1)
            self._answer(request, source, key)
            return
        if not record.events:
            self._count(ignored=1)
            self._answer(request, source, key)
            return
        self._queue.put(_Job(client, source, key, request, record.events))

    def _verified(self, data: bytes, address: str, client: RadiusClientView) -> AcctPacket | None:
        """The request decoded and its authenticators verified with the client's secret
        (the clients read again once if it fails: the secret may have just changed)."""
        for attempt in range(2):
            try:
                request = AcctPacket(
                    packet=data, secret=client.secret.encode(), dict=self._dictionary
                )
            except PacketError as exc:
                self._count(malformed=1)
                self._warn("malformed", address, "dropped a malformed packet from %s: %s", exc)
                return None
            if request.code not in (AccountingRequest, StatusServer):
                self._count(malformed=1)
                self._warn(
                    "code",
                    address,
                    "dropped a packet from %s of code %s: only Accounting-Request and "
                    "Status-Server are served",
                    request.code,
                )
                return None
            if authentic(request):
                return request
            if attempt == 0:
                reloaded = self._client(address, stale=True)
                if reloaded is not None and reloaded.secret != client.secret:
                    client = reloaded
                    continue
            break
        self._count(bad_authenticator=1)
        self._warn(
            "authenticator",
            address,
            "dropped a request from %s (ISP %s): its authenticator does not verify with the "
            "client's shared secret",
            client.isp_name,
        )
        return None

    def _warn(self, kind: str, address: str, message: str, *args: object) -> None:
        """Log a dropped packet's warning, at most once per WARNING_INTERVAL_S per kind and
        address (the receiving thread's own state: no lock)."""
        now = time.monotonic()
        last = self._warned.get((kind, address))
        if last is not None and now - last < WARNING_INTERVAL_S:
            return
        if len(self._warned) >= 4096:
            self._warned.clear()
        self._warned[(kind, address)] = now
        _LOG.warning(message + " (logged once a minute)", address, *args)

    def _answer(self, request: AcctPacket, source: Any, key: _Key) -> None:
        raw = request.CreateReply().ReplyPacket()
        with self._lock:
            self._cache.answered(key, raw, time.monotonic())
            self.counters.answered += 1
        self._sock.sendto(raw, source)

    # -- storing ---------------------------------------------------------------------------

    def _store_loop(self) -> None:
        """Store batches until the stop sentinel; nothing that goes wrong ends the thread."""
        finished = False
        while not finished:
            job = self._queue.get()
            if job is None:
                return
            jobs, events = [job], len(job.events)
            while events < MAX_EVENTS_PER_REPORT:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    finished = True
                    break
                if events + len(more.events) > MAX_EVENTS_PER_REPORT:
                    self._store_safely(jobs)
                    jobs, events = [], 0
                jobs.append(more)
                events += len(more.events)
            self._store_safely(jobs)

    def _store_safely(self, jobs: Sequence[_Job]) -> None:
        try:
            self._store(jobs)
        except Exception as exc:  # e.g. an answer that cannot be sent: logged, thread lives on
            _LOG.error("storing or answering a batch failed: %s: %s", type(exc).__name__, exc)

    def _store(self, jobs: Sequence[_Job]) -> None:
        """Store the jobs' events, one report_events call per client, then answer each job."""
        by_client: dict[str, list[_Job]] = {}
        for job in jobs:
            by_client.setdefault(job.client.address, []).append(job)
        for address, group in by_client.items():
            events = [event for job in group for event in job.events]
            try:
                results = self._report(group[0].client, events)
            except Exception as exc:
                # Not answered: the NAS retransmits, and the retransmission is tried anew.
                _LOG.error(
                    "storing %d binding event(s) from %s failed, not answered: %s: %s",
                    len(events),
                    address,
                    type(exc).__name__,
                    exc,
                )
                with self._lock:
                    self.counters.failed += len(group)
                    for job in group:
                        self._cache.forget(job.key)
                continue
            at = 0
            for job in group:
                outcome = results[at : at + len(job.events)]
                at += len(job.events)
                self._settle(job, outcome)

    def _report(self, client: RadiusClientView, events: list[BindingEvent]) -> list[EventResult]:
        with self._database.session() as session:
            return run_unit(
                session,
                lambda: report_events(
                    session,
                    actor=f"radius:{client.address}",
                    isp_id=client.isp_id,
                    events=events,
                    now=self._clock.now(),
                    config=self._config,
                ),
            )

    def _settle(self, job: _Job, outcome: Sequence[EventResult]) -> None:
        for event, result in zip(job.events, outcome, strict=True):
            if result.status == "refused":
                _LOG.warning(
                    "refused %s of subscriber %s session %s (%s) from %s (ISP %s): %s",
                    event.event,
                    event.subscriber_id,
                    event.session_id,
                    event.address,
                    job.client.address,
                    job.client.isp_name,
                    result.error,
                )
        stored = sum(r.status == "stored" for r in outcome)
        self._count(stored=stored, refused=len(outcome) - stored)
        self._answer(job.request, job.source, job.key)


def authentic(request: AcctPacket) -> bool:
    """The Request Authenticator verifies, and so does the Message-Authenticator if present."""
    if not request.VerifyAcctRequest():
        return False
    if request.message_authenticator:
        return bool(request.verify_message_authenticator())
    return True


def load_dictionary(extra: Sequence[str]) -> Dictionary:
    """The shipped dictionary and the operator's extra dictionary files."""
    from vpnreg.radius import DICTIONARY

    return Dictionary(str(DICTIONARY), *extra)


__all__ = [
    "AccountingServer",
    "Counters",
    "authentic",
    "client_address",
    "decoded_attributes",
    "load_dictionary",
]
