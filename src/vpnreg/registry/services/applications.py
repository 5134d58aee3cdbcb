"""Creating applications: prefixes and peers validated all at once, random tracking numbers,
loading."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vpnreg.core.bindings import BindingError, check_subscriber_id, parse_protocols
from vpnreg.core.ipspace import (
    Network,
    PrefixError,
    PrefixPolicy,
    overlapping_pairs,
    validate_prefix,
)
from vpnreg.core.review import Role, State
from vpnreg.core.tracking import RANDOM_BYTES, tracking_number
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.claims import range_keys
from vpnreg.registry.errors import FieldError, NotFound, StaleVersion, ValidationFailed
from vpnreg.registry.models import (
    ISP,
    Application,
    ApplicationPrefix,
    BoundTo,
    Organisation,
    PrefixPeer,
)
from vpnreg.registry.services import idempotency
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.snapshots import application_snapshot
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import ApplicationView

#: Prefix text and the peer prefixes it is limited to (empty: any peer).
PrefixRequest = tuple[str, Sequence[str]]


def new_tracking_numbers(
    session: Session, *, now: dt.datetime, config: ServiceConfig, count: int = 1
) -> list[str]:
    """`count` fresh tracking numbers for applications made at `now`, random (core.tracking) and
    distinct from each other and from every stored one (drawn again on the rare collision)."""
    year = now.astimezone(config.tz).year
    chosen: set[str] = set()
    while len(chosen) < count:
        wanted = count - len(chosen)
        drawn = {tracking_number(year, config.random_bytes(RANDOM_BYTES)) for _ in range(wanted)}
        drawn -= chosen
        for batch in _batches(sorted(drawn), 500):
            taken = set(
                session.scalars(
                    select(Application.tracking_number).where(
                        Application.tracking_number.in_(batch)
                    )
                )
            )
            chosen |= set(batch) - taken
    return list(chosen)


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def peer_policy(policy: PrefixPolicy) -> PrefixPolicy:
    """Peers are remote servers or offices: public space, but of any length."""
    return dataclasses.replace(policy, max_v4=0, max_v6=0)


def validate_peers(
    peers: Sequence[str], policy: PrefixPolicy, field: str
) -> tuple[list[Network], list[FieldError]]:
    networks: list[Network] = []
    errors: list[FieldError] = []
    for j, text in enumerate(peers):
        try:
            networks.append(validate_prefix(text, peer_policy(policy)))
        except PrefixError as exc:
            errors.append(FieldError(f"{field}[{j}]", str(exc.code), exc.message, text))
    return networks, errors


def validate_prefixes(
    prefixes: Sequence[PrefixRequest], policy: PrefixPolicy
) -> list[tuple[Network, list[Network]]]:
    """Every prefix and peer checked; all problems raised together as one ValidationFailed."""
    errors: list[FieldError] = []
    if not prefixes:
        errors.append(FieldError("prefixes", "required", "at least one prefix is needed", []))
    valid: list[tuple[int, Network, list[Network]]] = []
    for i, (text, peers) in enumerate(prefixes):
        network: Network | None = None
        try:
            network = validate_prefix(text, policy)
        except PrefixError as exc:
            errors.append(FieldError(f"prefixes[{i}]", str(exc.code), exc.message, text))
        peer_networks, peer_errors = validate_peers(peers, policy, f"prefixes[{i}].peers")
        errors.extend(peer_errors)
        if network is not None:
            valid.append((i, network, peer_networks))
    for a, b in overlapping_pairs([n for _, n, _ in valid]):
        (i, first, _), (j, second, _) = valid[a], valid[b]
        errors.append(
            FieldError(
                f"prefixes[{j}]",
                "overlap",
                f"{second} overlaps prefixes[{i}] ({first}) of the same application",
                prefixes[j][0],
            )
        )
    if errors:
        raise ValidationFailed(errors)
    return [(network, peers) for _, network, peers in valid]


def build_prefix(position: int, network: Network, peers: Sequence[Network]) -> ApplicationPrefix:
    start, end = range_keys(network)
    row = ApplicationPrefix(
        position=position, prefix=str(network), range_start=start, range_end=end
    )
    row.peers = [build_peer(p) for p in peers]
    return row


def build_peer(network: Network) -> PrefixPeer:
    start, end = range_keys(network)
    return PrefixPeer(peer=str(network), range_start=start, range_end=end)


def load_application(session: Session, application_id: int, *, lock: bool = True) -> Application:
    """The application, locked for update (PostgreSQL) and refreshed from the database."""
    query = select(Application).where(Application.id == application_id)
    if lock:
        query = query.with_for_update(of=Application)
    app = (
        session.execute(query.execution_options(populate_existing=True))
        .unique()
        .scalar_one_or_none()
    )
    if app is None:
        raise NotFound("application", application_id)
    return app


def check_version(app: Application, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != app.version:
        raise StaleVersion(expected_version, app.version)


def create_application(
    session: Session,
    *,
    organisation_id: int,
    isp_id: int,
    prefixes: Sequence[PrefixRequest],
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    idempotency_key: str | None = None,
    subscriber_id: str | None = None,
    protocols: Sequence[str] = (),
) -> ApplicationView:
    """A new draft application of `organisation_id` for prefixes reached through `isp_id`, or
    (with `subscriber_id` and no prefixes) for whatever addresses that ISP binds to the
    subscriber: a subscriber-bound application.

    The category is the organisation's. Every prefix goes through validate_prefix; every
    problem (bad prefix, bad peer, overlap inside the application, bad subscriber id or
    protocol) is reported at once. `protocols` limits the registration to those VPN protocols
    (empty: any). With an `idempotency_key`, a repeat of the same request by the same caller
    returns the application the first one made (services.idempotency).
    """
    require_role(actor, Role.APPLICANT, Role.ADMIN)
    scope = _Scope(subscriber_id, tuple(protocols))
    if idempotency_key is None:
        return _create(session, organisation_id, isp_id, prefixes, scope, actor, now, config, None)
    idempotency.check_key(idempotency_key)
    request: dict[str, object] = {
        "organisation_id": organisation_id,
        "isp_id": isp_id,
        "prefixes": [[p, list(peers)] for p, peers in prefixes],
    }
    # Only when given: keys remembered before issue 17 keep their fingerprints.
    if subscriber_id is not None:
        request["subscriber_id"] = subscriber_id
    if protocols:
        request["protocols"] = list(protocols)
    once = _Once(
        owner=actor_name(actor),
        key=idempotency_key,
        fingerprint=idempotency.request_fingerprint(request),
    )
    try:
        return _create(session, organisation_id, isp_id, prefixes, scope, actor, now, config, once)
    except IntegrityError:
        # A request with the same key committed between our look-up and our insert
        # (PostgreSQL; SQLite's writers take turns): answer with what it made.
        with service_transaction(session):
            made = idempotency.remembered(
                session, owner=once.owner, key=once.key, fingerprint=once.fingerprint, now=now
            )
            if made is None:
                raise
            return ApplicationView.of(load_application(session, made, lock=False))


@dataclasses.dataclass(frozen=True)
class _Scope:
    """What a registration covers besides prefixes: the subscriber, the VPN protocols."""

    subscriber_id: str | None
    protocols: tuple[str, ...]


def check_scope(
    prefixes: Sequence[PrefixRequest], scope: _Scope
) -> tuple[str | None, list[str], list[FieldError]]:
    """The subscriber id and protocols checked: (subscriber id, protocols, problems).

    A subscriber-bound application names the subscriber and no prefixes (its addresses are the
    ISP's bindings); a prefix-bound one names prefixes."""
    errors: list[FieldError] = []
    subscriber: str | None = None
    if scope.subscriber_id is not None:
        try:
            subscriber = check_subscriber_id(scope.subscriber_id)
        except BindingError as exc:
            errors.append(FieldError("subscriber_id", "invalid", exc.message, scope.subscriber_id))
        if prefixes:
            errors.append(
                FieldError(
                    "prefixes",
                    "unexpected",
                    "a subscriber-bound application holds no prefixes: give either prefixes "
                    "or a subscriber id",
                    len(prefixes),
                )
            )
    chosen: list[str] = []
    try:
        chosen = [p.value for p in parse_protocols(list(scope.protocols))]
    except BindingError as exc:
        errors.append(FieldError("protocols", "invalid", exc.message, list(scope.protocols)))
    return subscriber, chosen, errors


@dataclasses.dataclass(frozen=True)
class _Once:
    owner: str
    key: str
    fingerprint: str


def _create(
    session: Session,
    organisation_id: int,
    isp_id: int,
    prefixes: Sequence[PrefixRequest],
    scope: _Scope,
    actor: Actor,
    now: dt.datetime,
    config: ServiceConfig,
    once: _Once | None,
) -> ApplicationView:
    with service_transaction(session):
        if once is not None:
            made = idempotency.remembered(
                session, owner=once.owner, key=once.key, fingerprint=once.fingerprint, now=now
            )
            if made is not None:
                return ApplicationView.of(load_application(session, made, lock=False))
        org = session.get(Organisation, organisation_id)
        if org is None:
            raise NotFound("organisation", organisation_id)
        if (
            not isinstance(actor, str)
            and actor.role == Role.APPLICANT
            and (actor.organisation_id != organisation_id)
        ):
            raise ValidationFailed(
                [
                    FieldError(
                        "organisation_id", "forbidden", "not your organisation", organisation_id
                    )
                ]
            )
        if session.get(ISP, isp_id) is None:
            raise NotFound("ISP", isp_id)
        subscriber, protocols, errors = check_scope(prefixes, scope)
        checked: list[tuple[Network, list[Network]]] = []
        if scope.subscriber_id is None:
            try:
                checked = validate_prefixes(prefixes, config.prefix_policy)
            except ValidationFailed as exc:
                errors = exc.errors + errors
        if errors:
            raise ValidationFailed(errors)
        app = Application(
            organisation_id=org.id,
            isp_id=isp_id,
            category=org.category,
            subscriber_id=subscriber,
            bound_to=BoundTo.SUBSCRIBER.value if subscriber else BoundTo.PREFIXES.value,
            protocols=protocols,
            state=State.DRAFT.value,
            version=1,
            created_by=actor_name(actor),
            created_at=now,
            updated_at=now,
            prefixes=[build_prefix(i, n, peers) for i, (n, peers) in enumerate(checked)],
        )
        app.tracking_number = new_tracking_numbers(session, now=now, config=config)[0]
        session.add(app)
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="create_application",
            object_type="application",
            object_id=app.id,
            after=application_snapshot(app),
        )
        if once is not None:
            idempotency.remember(
                session,
                owner=once.owner,
                key=once.key,
                fingerprint=once.fingerprint,
                application_id=app.id,
                now=now,
            )
    return ApplicationView.of(app)


def get_application(session: Session, *, application_id: int) -> ApplicationView:
    """Read one application (no lock, no change)."""
    return ApplicationView.of(load_application(session, application_id, lock=False))


def find_application(session: Session, *, tracking_number: str) -> ApplicationView:
    app = session.scalar(select(Application).where(Application.tracking_number == tracking_number))
    if app is None:
        raise NotFound("application", tracking_number)
    return ApplicationView.of(app)
