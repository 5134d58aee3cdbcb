"""Settings from environment variables (prefix VPNREG_), one object passed to every adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Categories whose applications need a sector body's endorsement before the regulator decides.
DEFAULT_ENDORSED_CATEGORIES = ("software_house", "freelancer", "call_centre")


class Settings(BaseSettings):
    """Everything configurable. Read once at start-up; tests build their own instance."""

    model_config = SettingsConfigDict(env_prefix="VPNREG_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./var/vpnreg.db"
    #: A PostgreSQL streaming replica of `database_url` for the public reads (the lookup's SQL,
    #: the statistics, the transparency pages, the status page), ADR 0017; unset: every read
    #: goes to `database_url`. Writes, the feed and anything a signed-in caller does never use it.
    database_read_url: str | None = None
    data_dir: Path = Path("./var")
    #: The regulator's time zone: a registration is valid up to the end of its last day here.
    timezone: str = "Asia/Karachi"
    allow_documentation_prefixes: bool = False
    max_prefix_v4: int = Field(default=22, ge=0, le=32)
    max_prefix_v6: int = Field(default=40, ge=0, le=128)
    #: Days an ISP's binding is kept after it ended (`vpnreg maintenance` deletes older ones,
    #: keeping their counts in the audit log).
    binding_retention_days: int = Field(default=180, ge=1, le=36_500)
    endorsed_categories: tuple[str, ...] = DEFAULT_ENDORSED_CATEGORIES
    #: Key for hashing national ID numbers; never stored next to the data it protects.
    id_hash_key: str = "development-id-hash-key"
    #: Signs sessions and CSRF tokens. Unset in development: a random key per start (warned).
    #: A production server refuses to start without a real one (see vpnreg.web.security).
    secret_key: str | None = None
    feed_key: Path = Path("./var/feed.key")
    #: How long a served feed document stays valid; gateways refuse it after that.
    feed_validity_s: float = Field(default=86_400.0, gt=0)
    #: The server publishes at least this often, so expiry and activation happen on time.
    feed_publish_interval_s: float = Field(default=30.0, gt=0)
    #: How often the server looks for changes made by other processes, and whether it should
    #: take over publishing (ADR 0016). On PostgreSQL notifications bring changes at once and
    #: this is the fallback; on SQLite it is how long another process's change may take.
    feed_check_interval_s: float = Field(default=1.0, gt=0)
    #: On PostgreSQL the server LISTENs for changes committed by other processes (ADR 0016);
    #: turn it off behind a pooler in transaction mode (PgBouncer), which cannot carry LISTEN.
    feed_listen: bool = True
    #: The public lookup answers "now" from an in-memory index of the feed's registered set
    #: (ADR 0014); off (VPNREG_LOOKUP_INDEX=0): one SQL query per lookup, as before.
    lookup_index: bool = True
    #: Seconds a checked API token is answered from memory (vpnreg.web.token_cache); a
    #: revocation still ends it at once here and, on PostgreSQL, in every server process; 0: off.
    token_cache_s: float = Field(default=10.0, ge=0, le=3600)
    #: Publishes asked for by changes start at least this long after the previous one: a
    #: burst of changes is one publish, and each publish answers every waiting gateway.
    feed_notify_gap_s: float = Field(default=0.2, ge=0, le=60)
    #: The longest long poll a gateway may ask for.
    feed_max_wait_s: float = Field(default=60.0, gt=0)
    #: How many deltas the server keeps; older clients get a reset and fetch the snapshot.
    feed_max_deltas: int = Field(default=256, ge=1)
    #: When set, the server writes the static feed (ADR 0009) here on every publish.
    feed_static_dir: Path | None = None
    #: How long a static feed file the notification no longer names is kept (longer than any
    #: cache in front of the directory may keep an old notification.json).
    feed_static_grace_s: float = Field(default=3600.0, ge=0)
    #: The server signs a checkpoint of the audit chain this often, when events were appended
    #: since the last one (ADR 0008).
    audit_checkpoint_interval_min: float = Field(default=10.0, gt=0, le=1440)
    #: Portal sign-ups allowed per client address within an hour (every attempt counts).
    signup_limit_per_hour: int = Field(default=10, ge=1, le=100_000)
    #: `vpnreg serve` and slow clients: a request's line and headers must arrive within this
    #: many seconds (slow loris), its body within `http_body_timeout_s` once the head is in.
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    http_body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    #: How long an idle kept-alive connection stays open between requests.
    http_keep_alive_s: int = Field(default=5, ge=1, le=3600)
    #: Open connections (and requests in progress) beyond this get 503 with Retry-After.
    http_max_connections: int = Field(default=1000, ge=1, le=100_000)
    #: `vpnreg serve` writes a line per request to its standard error (uvicorn's access log).
    #: Behind nginx, which keeps its own, a deployment turns it off (deploy/vpnreg-serve.service):
    #: at a thousand gateways' long polls it is a line per gateway per change.
    http_access_log: bool = True

    @field_validator("database_read_url")
    @classmethod
    def _a_replica_of_a_postgresql_primary(
        cls, value: str | None, info: ValidationInfo
    ) -> str | None:
        """A replica only beside a PostgreSQL primary, and not the primary itself (ADR 0017)."""
        if value is None or not value.strip():
            return None
        primary = info.data.get("database_url")
        if not isinstance(primary, str):
            return value  # the primary's own error is reported
        problem = read_url_problem(value, primary)
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def _backend(url: str) -> str | None:
    """The URL's scheme without its driver (`postgresql+psycopg://...` -> `postgresql`)."""
    scheme, sep, _ = url.strip().partition("://")
    return scheme.split("+", 1)[0].lower() if sep else None


def _without_driver(url: str) -> str:
    """The URL with the driver left out of its scheme, so two spellings of one server compare
    equal (`postgresql+psycopg://h/db` and `postgresql://h/db`)."""
    return f"{_backend(url)}://{url.strip().partition('://')[2]}"


def read_url_problem(read_url: str, primary_url: str) -> str | None:
    """Why `read_url` cannot serve as the read replica of `primary_url`, or None.

    Only PostgreSQL streams a replica; SQLite has none (a second SQLite file is another
    database, not a copy of this one). The primary's own URL gives nothing but two pools
    on one server and read-only sessions that look like a replica's, so it is refused too.
    """
    if _backend(read_url) != "postgresql":
        return "must be a PostgreSQL URL (postgresql+psycopg://...): the streaming replica"
    if _backend(primary_url) != "postgresql":
        return (
            "needs VPNREG_DATABASE_URL on PostgreSQL: a replica streams from a PostgreSQL "
            "primary (SQLite has none)"
        )
    if _without_driver(read_url) == _without_driver(primary_url):
        return "names the primary (VPNREG_DATABASE_URL) itself; unset it to read from the primary"
    return None
