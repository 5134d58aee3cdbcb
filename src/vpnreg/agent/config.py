"""The gateway agent's configuration: a TOML file and command-line options over it.

The file takes the command-line options (same names, snake_case) plus what only a file sets:
retention and rotation of the verdict log, the block timeout, fail-open on stop, the feed timers.
Options given on the command line win over the file; SIGHUP re-reads the file and applies the
command-line options over it again. Unknown keys and wrong types are refused with a one-line
ConfigError naming the key.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from vpnreg.agent.enforce import DEFAULT_TIMEOUT_S
from vpnreg.agent.verdictlog import DEFAULT_RETENTION_DAYS, DEFAULT_ROTATE_BYTES
from vpnreg.core.policy import Network

_E = TypeVar("_E", bound=StrEnum)

DEFAULT_STATE_DIR = Path("/var/lib/vpnreg/gateway")
#: A local feed file is only stat()ed per poll: poll it often, so a registration lifts blocks fast.
FILE_REFRESH_S = 0.5
URL_REFRESH_S = 60.0


class EnforceKind(StrEnum):
    DRY_RUN = "dry-run"
    NFTABLES = "nftables"


class OnStale(StrEnum):
    KEEP = "keep"
    DRY_RUN = "dry-run"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key and the problem."""


@dataclass(frozen=True)
class GatewayConfig:
    pcap: Path | None
    interface: str | None
    feed: str
    trust: tuple[Path, ...]
    home: tuple[Network, ...]
    enforce: EnforceKind
    token: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    verdicts: Path | None = None
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    retention_days: int = DEFAULT_RETENTION_DAYS
    rotate_bytes: int = DEFAULT_ROTATE_BYTES
    block_timeout_s: int = DEFAULT_TIMEOUT_S
    fail_open_on_stop: bool = True
    on_stale: OnStale = OnStale.KEEP
    feed_refresh_s: float | None = None  # None: FILE_REFRESH_S for a file, URL_REFRESH_S for a URL
    feed_retry_s: float = 10.0
    feed_expire_s: float = 7200.0

    @property
    def feed_is_url(self) -> bool:
        return self.feed.startswith(("http://", "https://"))

    @property
    def refresh_s(self) -> float:
        if self.feed_refresh_s is not None:
            return self.feed_refresh_s
        return URL_REFRESH_S if self.feed_is_url else FILE_REFRESH_S

    @property
    def source_label(self) -> str:
        return str(self.pcap) if self.pcap is not None else f"interface:{self.interface}"


KEYS = frozenset(f.name for f in fields(GatewayConfig))


def read_file(path: Path) -> dict[str, Any]:
    """The raw keys of a TOML configuration file (checked against the known keys)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys: {', '.join(unknown)}")
    return data


def resolve(file_values: Mapping[str, Any], overrides: Mapping[str, Any]) -> GatewayConfig:
    """The effective configuration: the file's values, then the given command-line options."""
    merged = dict(file_values)
    merged.update({k: v for k, v in overrides.items() if v is not None and v != ()})
    unknown = sorted(set(merged) - KEYS)
    if unknown:
        raise ConfigError(f"unknown options: {', '.join(unknown)}")
    pcap, interface = merged.get("pcap"), merged.get("interface")
    if (pcap is None) == (interface is None):
        raise ConfigError("give exactly one of --pcap FILE and --interface IF")
    for required in ("feed", "trust", "home", "enforce"):
        if merged.get(required) in (None, "", [], ()):
            raise ConfigError(f"{required} is required (--{required} or the configuration file)")
    m = merged
    return GatewayConfig(
        pcap=None if pcap is None else Path(_str(pcap, "pcap")),
        interface=None if interface is None else _str(interface, "interface"),
        feed=_str(merged["feed"], "feed"),
        trust=tuple(Path(_str(p, "trust")) for p in _list(merged["trust"], "trust")),
        home=tuple(_network(p) for p in _list(merged["home"], "home")),
        enforce=_enum(EnforceKind, merged["enforce"], "enforce"),
        token=None if merged.get("token") is None else _str(merged["token"], "token"),
        state_dir=Path(_str(merged.get("state_dir", DEFAULT_STATE_DIR), "state_dir")),
        verdicts=None if m.get("verdicts") is None else Path(_str(m["verdicts"], "verdicts")),
        metrics_port=_port(merged.get("metrics_port")),
        metrics_address=_str(merged.get("metrics_address", "127.0.0.1"), "metrics_address"),
        retention_days=_int(m.get("retention_days", DEFAULT_RETENTION_DAYS), "retention_days", 1),
        rotate_bytes=_int(merged.get("rotate_bytes", DEFAULT_ROTATE_BYTES), "rotate_bytes", 1024),
        block_timeout_s=_int(m.get("block_timeout_s", DEFAULT_TIMEOUT_S), "block_timeout_s", 1),
        fail_open_on_stop=_bool(merged.get("fail_open_on_stop", True), "fail_open_on_stop"),
        on_stale=_enum(OnStale, merged.get("on_stale", OnStale.KEEP), "on_stale"),
        feed_refresh_s=None if merged.get("feed_refresh_s") is None
        else _seconds(merged["feed_refresh_s"], "feed_refresh_s"),
        feed_retry_s=_seconds(merged.get("feed_retry_s", 10.0), "feed_retry_s"),
        feed_expire_s=_seconds(merged.get("feed_expire_s", 7200.0), "feed_expire_s"),
    )  # fmt: skip


def load(path: Path | None, overrides: Mapping[str, Any]) -> GatewayConfig:
    return resolve(read_file(path) if path is not None else {}, overrides)


def _str(value: object, key: str) -> str:
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string")
    return value


def _list(value: object, key: str) -> list[object]:
    if isinstance(value, str | Path):
        return [value]
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{key} must be a non-empty list")
    return list(value)


def _network(value: object) -> Network:
    text = _str(value, "home")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ConfigError(f"home: bad prefix {text!r}: {exc}") from None


def _int(value: object, key: str, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}")
    return value


def _port(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= 65535:
        raise ConfigError("metrics_port must be an integer in 0..65535")
    return value


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value


def _seconds(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key} must be a positive number of seconds")
    return float(value)


def _enum(kind: type[_E], value: object, key: str) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise ConfigError(f"{key} must be one of {choices}, not {value!r}") from None
