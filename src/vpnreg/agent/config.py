"""The gateway agent's configuration: a TOML file and command-line options over it.

The file takes the command-line options (same names, snake_case) plus what only a file sets:
retention and rotation of the verdict log, the block timeout, fail-open on stop, the feed timers
and the feed size limit.
Options given on the command line win over the file; SIGHUP re-reads the file and applies the
command-line options over it again. GatewayConfig, a pydantic model, checks the merged values:
unknown keys and wrong types are refused with a one-line ConfigError naming where the value came
from (the file, or the option) and the key, e.g. "gateway.toml: enforce: must be one of dry-run,
nftables (got 'drop')".
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Container, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from vpnreg.agent.ctcapture import DEFAULT_PACKETS, ConntrackCapture, Shard
from vpnreg.agent.enforce import DEFAULT_TIMEOUT_S
from vpnreg.agent.feedclient import DEFAULT_MAX_BYTES, is_static_feed
from vpnreg.agent.reporter import DEFAULT_INTERVAL_S, DEFAULT_MAX_SPOOLED
from vpnreg.agent.verdictlog import DEFAULT_RETENTION_DAYS, DEFAULT_ROTATE_BYTES
from vpnreg.core.policy import Network
from vpnreg.validation import location, problem

_E = TypeVar("_E", bound=StrEnum)

DEFAULT_STATE_DIR = Path("/var/lib/vpnreg/gateway")
#: A local feed file is only stat()ed per poll: poll it often, so a registration lifts blocks fast.
FILE_REFRESH_S = 0.5
URL_REFRESH_S = 60.0
#: A static feed's notification.json over HTTP (ADR 0009): no long poll, but a conditional GET
#: that a web server or CDN answers 304 in a few hundred bytes, so it is asked for often.
STATIC_URL_REFRESH_S = 5.0


class EnforceKind(StrEnum):
    DRY_RUN = "dry-run"
    NFTABLES = "nftables"


class CaptureKind(StrEnum):
    #: Every packet of the interface, as libpcap captures it.
    INTERFACE = "interface"
    #: The first packets of each connection, handed over by conntrack and nftables (ADR 0019).
    CONNTRACK = "conntrack"


class OnStale(StrEnum):
    KEEP = "keep"
    DRY_RUN = "dry-run"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key and the problem."""


def _path_text(value: object) -> object:
    # Path("") is ".", so an empty string would otherwise pass as the current directory.
    if isinstance(value, Path) or (isinstance(value, str) and value):
        return value
    raise PydanticCustomError("path", "must be a non-empty path")


def _one_or_many(value: object) -> object:
    """`trust = "k.pub"` is the list of that one key; likewise one home prefix."""
    return [value] if isinstance(value, str | Path) else value


def _network(value: object) -> Network:
    if not isinstance(value, str):
        raise PydanticCustomError("prefix", "must be a prefix such as 198.51.100.0/24")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise PydanticCustomError("prefix", "bad prefix: {reason}", {"reason": str(exc)}) from None


def _member_of(kind: type[_E]) -> Callable[[object], object]:
    values = [member.value for member in kind]

    def check(value: object) -> object:
        if isinstance(value, kind) or (isinstance(value, str) and value in values):
            return value
        raise PydanticCustomError(
            "choice",
            "must be one of {choices} (got {got})",
            {"choices": ", ".join(values), "got": repr(value)},
        )

    return check


_Text = Annotated[str, Field(strict=True, min_length=1)]
_FilePath = Annotated[Path, BeforeValidator(_path_text)]
_Prefix = Annotated[Network, PlainValidator(_network)]
_Count = Annotated[int, Field(strict=True)]
_Seconds = Annotated[float, Field(strict=True, gt=0)]


class GatewayConfig(BaseModel):
    """The effective configuration; built by `load` (or `resolve`), never edited afterwards."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pcap: _FilePath | None = None
    interface: _Text | None = None
    feed: _Text
    trust: Annotated[tuple[_FilePath, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
    home: Annotated[tuple[_Prefix, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
    enforce: Annotated[EnforceKind, BeforeValidator(_member_of(EnforceKind))]
    capture: Annotated[CaptureKind, BeforeValidator(_member_of(CaptureKind))] = (
        CaptureKind.INTERFACE
    )
    #: conntrack capture: packets per direction of each connection handed to the agent.
    capture_packets: Annotated[_Count, Field(ge=1, le=1000)] = DEFAULT_PACKETS
    #: conntrack capture: this process decides the connections of shard `shard` of `shards`.
    shards: Annotated[_Count, Field(ge=1, le=64)] = 1
    shard: Annotated[_Count, Field(ge=0)] = 0
    token: _Text | None = None
    state_dir: _FilePath = DEFAULT_STATE_DIR
    verdicts: _FilePath | None = None
    metrics_port: Annotated[_Count, Field(ge=0, le=65535)] | None = None
    metrics_address: _Text = "127.0.0.1"
    retention_days: Annotated[_Count, Field(ge=1)] = DEFAULT_RETENTION_DAYS
    rotate_bytes: Annotated[_Count, Field(ge=1024)] = DEFAULT_ROTATE_BYTES
    block_timeout_s: Annotated[_Count, Field(ge=1)] = DEFAULT_TIMEOUT_S
    fail_open_on_stop: Annotated[bool, Field(strict=True)] = True
    on_stale: Annotated[OnStale, BeforeValidator(_member_of(OnStale))] = OnStale.KEEP
    #: None: FILE_REFRESH_S for a file, URL_REFRESH_S for a URL (see refresh_s).
    feed_refresh_s: _Seconds | None = None
    feed_retry_s: _Seconds = 10.0
    feed_expire_s: _Seconds = 7200.0
    #: Largest feed document or HTTP response accepted (after decompression), in bytes.
    feed_max_bytes: Annotated[_Count, Field(ge=1024)] = DEFAULT_MAX_BYTES
    #: The registry's base URL for reports (POST /api/v1/gateway-reports); None: no reports.
    report_url: _Text | None = None
    #: This gateway's name in its reports (required with report_url).
    gateway_id: Annotated[str, Field(strict=True, min_length=1, max_length=100)] | None = None
    report_interval_s: Annotated[float, Field(strict=True, ge=10)] = DEFAULT_INTERVAL_S
    report_max_spooled: Annotated[_Count, Field(ge=1)] = DEFAULT_MAX_SPOOLED

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        # Checked first: without a source nothing else matters, and the fix is on the command line.
        if isinstance(data, Mapping) and (data.get("pcap") is None) is (
            data.get("interface") is None
        ):
            raise PydanticCustomError(
                "source", "give exactly one of --pcap FILE and --interface IF"
            )
        return data

    @model_validator(mode="after")
    def _reports_named(self) -> GatewayConfig:
        if self.report_url is not None and self.gateway_id is None:
            raise PydanticCustomError("report", "report_url needs gateway_id (--gateway-id)")
        return self

    @model_validator(mode="after")
    def _capture_fits(self) -> GatewayConfig:
        if self.capture is CaptureKind.CONNTRACK and self.interface is None:
            raise PydanticCustomError("capture", "capture conntrack needs --interface")
        if self.shards > 1 and self.capture is not CaptureKind.CONNTRACK:
            raise PydanticCustomError("shards", "shards need --capture conntrack")
        if self.shard >= self.shards:
            raise PydanticCustomError(
                "shards", "shard must be below shards (got shard {shard} of {shards})",
                {"shard": self.shard, "shards": self.shards},
            )  # fmt: skip
        return self

    @property
    def conntrack_capture(self) -> ConntrackCapture | None:
        """What the agent installs for the conntrack capture, or None (interface or file)."""
        if self.capture is not CaptureKind.CONNTRACK or self.interface is None:
            return None
        return ConntrackCapture(
            self.interface, packets=self.capture_packets, shard=Shard(self.shard, self.shards)
        )

    @property
    def capture_source(self) -> str:
        """What NFStream reads: the capture file, the interface, or the conntrack capture link."""
        capture = self.conntrack_capture
        if capture is not None:
            return capture.device
        return str(self.pcap) if self.pcap is not None else str(self.interface)

    @property
    def enforce_table(self) -> str:
        """The enforcement table's name: one per shard, so that each process owns its own."""
        return "vpnreg" if self.shards == 1 else f"vpnreg{self.shard}"

    @property
    def feed_is_url(self) -> bool:
        return self.feed.startswith(("http://", "https://"))

    @property
    def refresh_s(self) -> float:
        if self.feed_refresh_s is not None:
            return self.feed_refresh_s
        if not self.feed_is_url:
            return FILE_REFRESH_S
        return STATIC_URL_REFRESH_S if is_static_feed(self.feed) else URL_REFRESH_S

    @property
    def source_label(self) -> str:
        if self.pcap is not None:
            return str(self.pcap)
        if self.capture is CaptureKind.CONNTRACK:
            return f"conntrack:{self.interface}:{self.shard}/{self.shards}"
        return f"interface:{self.interface}"


KEYS = frozenset(GatewayConfig.model_fields)


def read_file(path: Path) -> dict[str, Any]:
    """The raw keys of a TOML configuration file (checked when resolved, naming the file)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def resolve(
    file_values: Mapping[str, Any], overrides: Mapping[str, Any], *, source: Path | None = None
) -> GatewayConfig:
    """The effective configuration: the file's values, then the given command-line options.

    An option left out (None, or an empty tuple for a repeatable one) keeps the file's value.
    `source` names the file in error messages.
    """
    given = {k: v for k, v in overrides.items() if v is not None and v != ()}
    try:
        return GatewayConfig.model_validate({**file_values, **given})
    except ValidationError as exc:
        origin = str(source) if source is not None else "configuration file"
        raise ConfigError(
            "; ".join(_describe(e, from_options=given.keys(), origin=origin) for e in exc.errors())
        ) from None


def load(path: Path | None, overrides: Mapping[str, Any]) -> GatewayConfig:
    """The configuration from the file at `path` (if any) with `overrides` over it."""
    return resolve(read_file(path) if path is not None else {}, overrides, source=path)


def _describe(error: ErrorDetails, *, from_options: Container[str], origin: str) -> str:
    loc = error["loc"]
    if not loc:
        return problem(error)
    key = str(loc[0])
    option = "--" + key.replace("_", "-")
    if error["type"] == "missing":
        return f"{key}: required ({option} or the configuration file)"
    if key in from_options:  # "--home[1]: bad prefix ...": the option names the key already
        return f"{option}{location(loc)[len(key) :]}: {problem(error)}"
    return f"{origin}: {location(loc)}: {problem(error)}"
