"""SQLAlchemy models of the registry: organisations, users, applications and their history."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Category(StrEnum):
    """What kind of organisation registers a VPN endpoint."""

    SOFTWARE_HOUSE = "software_house"
    CALL_CENTRE = "call_centre"
    FREELANCER = "freelancer"
    BANK = "bank"
    FOREIGN_MISSION = "foreign_mission"
    OTHER = "other"


class AmendmentState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    #: The regulator kept the old value (protocol amendments; migration 0010).
    REFUSED = "refused"


class AppealOutcome(StrEnum):
    UPHELD = "upheld"
    OVERTURNED = "overturned"


def _category_check(column: str) -> str:
    values = ", ".join(f"'{c.value}'" for c in Category)
    return f"{column} IN ({values})"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on both backends (SQLite would otherwise drop the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is needed")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy's documented hook
        dt.datetime: UTCDateTime(),
        dt.date: Date(),
        str: String(),
    }


class Organisation(Base):
    """An applicant organisation or individual; individuals give a national ID number."""

    __tablename__ = "organisations"
    __table_args__ = (CheckConstraint(_category_check("category"), name="category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    category: Mapped[str] = mapped_column(String(32))
    registration_number: Mapped[str | None] = mapped_column(String(64))
    #: HMAC-SHA256 (hex) of the national ID number under a key kept outside the database.
    national_id_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    national_id_last4: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[dt.datetime]


class ISP(Base):
    """An internet service provider that verifies its subscribers' prefixes."""

    __tablename__ = "isps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime]


class SectorBody(Base):
    """A sector body (e.g. a software export board) that endorses applications of its categories."""

    __tablename__ = "sector_bodies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime]
    category_rows: Mapped[list[SectorBodyCategory]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(row.category for row in self.category_rows))


class SectorBodyCategory(Base):
    __tablename__ = "sector_body_categories"
    __table_args__ = (CheckConstraint(_category_check("category"), name="category"),)

    sector_body_id: Mapped[int] = mapped_column(
        ForeignKey("sector_bodies.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(32), primary_key=True)


class User(Base):
    """A person or machine that logs in; the role decides what it may do."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    #: argon2id hash; the password itself is never stored.
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    isp_id: Mapped[int | None] = mapped_column(ForeignKey("isps.id"))
    sector_body_id: Mapped[int | None] = mapped_column(ForeignKey("sector_bodies.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime]


class BoundTo(StrEnum):
    """Where a registration's addresses come from: its own prefixes, or its ISP's bindings."""

    PREFIXES = "prefixes"
    SUBSCRIBER = "subscriber"


class Application(Base):
    """One registration request and, once approved, the registration itself."""

    __tablename__ = "applications"
    __table_args__ = (
        CheckConstraint("bound_to IN ('prefixes', 'subscriber')", name="bound_to"),
        Index("ix_applications_isp_id_subscriber_id", "isp_id", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    isp_id: Mapped[int] = mapped_column(ForeignKey("isps.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    #: The ISP's own customer reference for the subscriber: required for a subscriber-bound
    #: registration (its addresses are the ISP's bindings of this id); legacy imports keep it
    #: as a plain reference.
    subscriber_id: Mapped[str | None] = mapped_column(String(64))
    #: BoundTo: 'prefixes' (the prefixes below) or 'subscriber' (no prefixes; bindings).
    bound_to: Mapped[str] = mapped_column(
        String(16), default=BoundTo.PREFIXES.value, server_default=BoundTo.PREFIXES.value
    )
    #: The VPN protocols (VpnProtocol values, canonical order) the registration allows; [] = any.
    protocols: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    state: Mapped[str] = mapped_column(String(32), index=True)
    #: Bumped by every change; services refuse a caller's stale expected_version.
    version: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[dt.datetime | None]
    #: The last day (in the regulator's time zone) on which the registration holds.
    valid_until: Mapped[dt.date | None]
    renews_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    rejected_from: Mapped[str | None] = mapped_column(String(32))
    rejected_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    isp: Mapped[ISP] = relationship(lazy="joined")
    prefixes: Mapped[list[ApplicationPrefix]] = relationship(
        back_populates="application",
        cascade="all, delete-orphan",
        order_by="ApplicationPrefix.position",
        lazy="selectin",
    )

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}  # noqa: RUF012


class ApplicationPrefix(Base):
    """A public prefix an application claims; range columns make overlap a string comparison."""

    __tablename__ = "application_prefixes"
    __table_args__ = (UniqueConstraint("application_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    prefix: Mapped[str] = mapped_column(String(64))
    #: First and last address as 32 hex digits (IPv4 as ::ffff:a.b.c.d), comparable as text.
    range_start: Mapped[str] = mapped_column(String(32), index=True)
    range_end: Mapped[str] = mapped_column(String(32))

    application: Mapped[Application] = relationship(back_populates="prefixes")
    peers: Mapped[list[PrefixPeer]] = relationship(
        cascade="all, delete-orphan", order_by="PrefixPeer.id", lazy="selectin"
    )


class PrefixPeer(Base):
    """A remote prefix (VPN server or office) a registered prefix may talk to."""

    __tablename__ = "prefix_peers"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix_id: Mapped[int] = mapped_column(
        ForeignKey("application_prefixes.id", ondelete="CASCADE"), index=True
    )
    peer: Mapped[str] = mapped_column(String(64))
    range_start: Mapped[str] = mapped_column(String(32))
    range_end: Mapped[str] = mapped_column(String(32))


class PeerAmendment(Base):
    """A requested change of a prefix's peers; the old peers hold until the regulator approves."""

    __tablename__ = "peer_amendments"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix_id: Mapped[int] = mapped_column(
        ForeignKey("application_prefixes.id", ondelete="CASCADE"), index=True
    )
    peers: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[dt.datetime]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[dt.datetime | None]


class ProtocolAmendment(Base):
    """A requested change of an application's VPN protocols (migration 0010): the old list holds
    until the regulator approves; a refusal keeps it. The same rules as PeerAmendment."""

    __tablename__ = "protocol_amendments"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    #: VpnProtocol values in canonical order; [] = any protocol.
    protocols: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[dt.datetime]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[dt.datetime | None]


class Review(Base):
    """One step of the review: who did what to an application, and why."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    #: Indexed (0014): the statistics read the steps of a period (shares, turnaround).
    created_at: Mapped[dt.datetime] = mapped_column(index=True)


class Appeal(Base):
    """An applicant's appeal against a rejection and the regulator's decision on it."""

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    filed_by: Mapped[str] = mapped_column(String(100))
    filed_at: Mapped[dt.datetime]
    outcome: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class Document(Base):
    """Metadata of an uploaded document; the file itself is stored by its sha256."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(128))
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[dt.datetime]


class AuditLogRow(Base):
    """One audit event; rows are only ever appended (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: 1: hashed as in ADR 0003 (events before migration 0009); 2: salted field digests (ADR 0008).
    hash_version: Mapped[int] = mapped_column(Integer, server_default="1")
    #: The event's random salt (version 2); never exported, so short values stay unguessable.
    salt: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class AuditCheckpoint(Base):
    """A signed checkpoint of the audit chain (count, head hash, time), chained to the one
    before; append-only like the log (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_checkpoints"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger)
    head: Mapped[str] = mapped_column(String(64))
    time: Mapped[dt.datetime]
    previous: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))


class AuditHead(Base):
    """The one row naming the newest audit event; locking it serialises appends."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Claim(Base):
    """Address space held by an approved, active, expiring or suspended registration over its
    validity (a suspended one keeps its claim: the ISP's re-attestation restores it unreviewed).

    On PostgreSQL the migration adds generated columns `prefix` (cidr) and `valid_during`
    (tstzrange, half-open) and an exclusion constraint over them, so the database itself refuses
    overlapping claims. On SQLite the service layer runs the same check under BEGIN IMMEDIATE.
    """

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    prefix_text: Mapped[str] = mapped_column(String(64))
    range_start: Mapped[str] = mapped_column(String(32), index=True)
    range_end: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[dt.datetime]
    #: Exclusive end of validity (the start of the day after valid_until, in UTC).
    valid_end: Mapped[dt.datetime]


# -- API tokens and the allowlist feed (migration 0002) -------------------------------------------


class ApiToken(Base):
    """A bearer token for machines (gateways, integrations); only its SHA-256 is stored.

    A token either carries a role of its own, or is bound to a user and acts as that user (with
    the user's current role and scope, like a personal access token).
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The token's role; for a user-bound token, the user's role when it was created (a record
    #: only: the token acts with the user's role of the moment).
    role: Mapped[str] = mapped_column(String(32))
    #: Hex SHA-256 of the whole token text; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The user the token acts for. Deleting the user deletes its tokens: a token left without
    #: its user must never fall back to acting with the stored role alone.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    last_used_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User | None] = relationship(lazy="joined")


class FeedStateRow(Base):
    """The one row naming the feed's session, serial, mode and state time (FeedHistory's head)."""

    __tablename__ = "feed_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    session_id: Mapped[str] = mapped_column(String(64))
    serial: Mapped[int] = mapped_column(BigInteger)
    set_hash: Mapped[str] = mapped_column(String(64))
    #: EnforcementMode.encode() bytes.
    mode: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[dt.datetime]
    max_deltas: Mapped[int] = mapped_column(Integer)


class FeedEntryRow(Base):
    """One entry of the published set: its 74-byte v2 record (ADR 0006) and its peer encodings
    (if any)."""

    __tablename__ = "feed_entries"

    record: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    peers: Mapped[bytes | None] = mapped_column(LargeBinary)


class FeedDeltaRow(Base):
    """One kept step of the feed history (previous_serial -> serial) of the current session."""

    __tablename__ = "feed_deltas"

    serial: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    session_id: Mapped[str] = mapped_column(String(64))
    previous_serial: Mapped[int] = mapped_column(BigInteger)
    #: Concatenated 74-byte v2 records (ADR 0006).
    added: Mapped[bytes] = mapped_column(LargeBinary)
    removed: Mapped[bytes] = mapped_column(LargeBinary)
    #: The peer lists the records name (see services.feed for the layout).
    peers: Mapped[bytes] = mapped_column(LargeBinary)
    set_hash: Mapped[str] = mapped_column(String(64))
    mode: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[dt.datetime]


class WebSession(Base):
    """A signed-in browser: the cookie holds a random token, the database only its SHA-256."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]

    user: Mapped[User] = relationship(lazy="joined")


class LoginFailure(Base):
    """One failed sign-in, kept for a while to throttle guessing per username and address."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_username_address", "username", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[dt.datetime]


class SignupAttempt(Base):
    """One sign-up attempt from a client address, kept for the throttle's window.

    A table of its own: sign-ups are counted per address whatever the username, and signing in
    (which clears that user's failures) never touches them."""

    __tablename__ = "signup_attempts"
    __table_args__ = (Index("ix_signup_attempts_address_attempted_at", "address", "attempted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[dt.datetime]


class IdempotencyKey(Base):
    """A client's Idempotency-Key on creating an application, and what that request made.

    A retried create (after a timeout, a 503 or a lost connection) with the same key and the
    same body gets the application its first attempt made, never a second one."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Who sent it (the actor's name): keys of different callers never meet.
    owner: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(128))
    #: SHA-256 of the request's canonical form: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    created_at: Mapped[dt.datetime]


class OutboxMessage(Base):
    """A rendered notification e-mail waiting to be sent; written in the change's transaction."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime]
    event: Mapped[str] = mapped_column(String(64))
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("applications.id", ondelete="SET NULL"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]


# -- Subscriber bindings and RADIUS clients (migration 0008) --------------------------------------


class Binding(Base):
    """An address (or prefix, optionally a port range of it) an ISP reports for a subscriber.

    Live while ended_at is NULL and valid_until lies ahead; kept afterwards as history of who
    held the address when. One row per (ISP, subscriber id, session id): a retransmitted event
    finds its row again.
    """

    __tablename__ = "bindings"
    __table_args__ = (
        # Also the index of lookups by (ISP, subscriber id): its leading columns.
        UniqueConstraint("isp_id", "subscriber_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    isp_id: Mapped[int] = mapped_column(ForeignKey("isps.id"))
    subscriber_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(128))
    #: The address or prefix as normalised text (a bare address is a /32 or /128).
    address: Mapped[str] = mapped_column(String(64))
    #: First and last address as 32 hex digits, as ApplicationPrefix.
    range_start: Mapped[str] = mapped_column(String(32), index=True)
    range_end: Mapped[str] = mapped_column(String(32))
    #: The port block (RFC 7422 style) of a shared address; NULL: the whole address.
    port_lo: Mapped[int | None] = mapped_column(Integer)
    port_hi: Mapped[int | None] = mapped_column(Integer)
    #: Indexed: the feed publisher looks for bindings that began since its last publish.
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    #: Exclusive end: at most 24 h after the last start or interim update.
    valid_until: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    #: Set by a stop: the binding ended at that instant.
    ended_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    #: The audit sequence of the report that last changed this row (NULL before revision
    #: 0013): the feed publisher recomputes only the subscribers changed since it last looked.
    changed_seq: Mapped[int | None] = mapped_column(BigInteger, index=True)


class RadiusClient(Base):
    """An ISP's RADIUS accounting client (BNG/BRAS or AAA proxy): its address and shared secret.

    The secret is stored as given: verifying a Request Authenticator needs the secret itself."""

    __tablename__ = "radius_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    isp_id: Mapped[int] = mapped_column(ForeignKey("isps.id"), index=True)
    address: Mapped[str] = mapped_column(String(64), unique=True)
    secret: Mapped[str] = mapped_column(String(256))
    #: The attribute holding the subscriber id (User-Name unless the ISP says e.g. Class).
    subscriber_attribute: Mapped[str] = mapped_column(
        String(64), default="User-Name", server_default="User-Name"
    )
    #: The (vendor) attribute holding the port block, if the ISP sends one.
    ports_attribute: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]


class GatewayReport(Base):
    """One report a gateway sent (ADR 0010): who, under which feed state, in which mode.

    Append-only: rows are inserted once, keyed by the gateway's report id (a resend finds it and
    stores nothing), and never updated."""

    __tablename__ = "gateway_reports"
    #: A gateway's reports by time: its latest report up to a moment within one day (0014).
    __table_args__ = (Index("ix_gateway_reports_gateway_received", "gateway_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[str] = mapped_column(String(32), unique=True)
    gateway_id: Mapped[str] = mapped_column(String(100))
    #: The name of the gateway token it came with.
    token_name: Mapped[str] = mapped_column(String(100))
    created: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    mode: Mapped[str] = mapped_column(String(16))
    feed_session: Mapped[str | None] = mapped_column(String(64))
    feed_serial: Mapped[int | None] = mapped_column(BigInteger)
    set_hash: Mapped[str | None] = mapped_column(String(64))


class GatewayReportCount(Base):
    """One hourly count of a report: registration x protocol x verdict, or an unregistered
    domestic /24 or /48 x protocol, or protocol x verdict alone."""

    __tablename__ = "gateway_report_counts"
    __table_args__ = (
        Index("ix_gateway_report_counts_registration_hour", "registration_id", "hour"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("gateway_reports.id"), index=True)
    hour: Mapped[dt.datetime] = mapped_column(index=True)
    protocol: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(16))
    #: The feed's registration id (an application's id); not a foreign key: a report may name
    #: a registration the registry has since removed, and is kept as sent.
    registration_id: Mapped[int | None] = mapped_column(BigInteger)
    prefix: Mapped[str | None] = mapped_column(String(64))
    flows: Mapped[int] = mapped_column(BigInteger)


class GatewayReportDay(Base):
    """Rollup (0014, ADR 0010): per UTC day of receipt and gateway, the highest report id it
    stored that day. Kept by store_report in the report's transaction; it lets the latest
    report of every gateway up to a moment be found without reading every report."""

    __tablename__ = "gateway_report_days"

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_report_id: Mapped[int] = mapped_column(BigInteger)


class GatewayFlowDay(Base):
    """Rollup (0014, ADR 0010): the flows of every stored count row summed per UTC day of its
    hour, gateway, protocol and verdict. Kept by store_report in the report's transaction (a
    resend stores nothing, so adds nothing); the daily figures read it, not the count rows.
    Per gateway, so concurrent reports of different gateways never wait on one row."""

    __tablename__ = "gateway_flow_days"

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16), primary_key=True)
    flows: Mapped[int] = mapped_column(BigInteger)


class ModeChange(Base):
    """One change of the feed's enforcement mode (ADR 0012): what changed, when, why, by which
    role, and until when. A trial has a planned end, after which the publish path reverts it;
    any change ends when a later one for the same protocol (or the national switch) replaces it.
    The audit log holds the same change as its "feed.mode" event; this row is what the public
    page lists and what the revert looks for."""

    __tablename__ = "mode_changes"
    __table_args__ = (Index("ix_mode_changes_open_trials", "ended_at", "planned_end"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: A VPN protocol, or None: the national switch (every protocol).
    protocol: Mapped[str | None] = mapped_column(String(16))
    from_mode: Mapped[str] = mapped_column(String(16))
    to_mode: Mapped[str] = mapped_column(String(16))
    #: The whole signed mode before the change (EnforcementMode.to_json()): what a revert restores.
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    #: The acting user's role ("regulator"), or the system actor ("system"); never a name.
    actor_role: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime]
    serial: Mapped[int] = mapped_column(BigInteger)
    #: A trial's end, as announced (None: until changed).
    planned_end: Mapped[dt.datetime | None]
    #: When it stopped applying (None: still in force).
    ended_at: Mapped[dt.datetime | None]
    #: "planned end" or "replaced by change N".
    ended_by: Mapped[str | None] = mapped_column(String(64))
