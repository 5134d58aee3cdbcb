"""The gateway's configuration: the TOML file, the command line over it, and what is refused."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from vpnreg.agent.config import ConfigError, EnforceKind, OnStale, load

net = ipaddress.ip_network
VALID = 'pcap = "a"\nfeed = "f"\ntrust = ["k"]\nhome = ["10.0.0.0/8"]\nenforce = "dry-run"\n'


def with_line(line: str, text: str = VALID) -> str:
    """VALID with one key set to another value (the key is added when missing)."""
    key = line.split("=")[0].strip()
    kept = [x for x in text.splitlines() if x.split("=")[0].strip() != key]
    return "\n".join([*kept, line]) + "\n"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("", {}, "give exactly one of --pcap FILE and --interface IF"),
        ('pcap = "a"', {"interface": "eth1"}, "give exactly one of --pcap FILE and --interface IF"),
        (VALID + "bogus = 1\n", {}, "{conf}: bogus: unknown key"),
        (with_line('home = ["10.0.0.1/8"]'), {},
         "{conf}: home[0]: bad prefix: 10.0.0.1/8 has host bits set"),
        (with_line('enforce = "drop"'), {},
         "{conf}: enforce: must be one of dry-run, nftables (got 'drop')"),
        (with_line('on_stale = ["keep"]'), {},
         "{conf}: on_stale: must be one of keep, dry-run (got ['keep'])"),
        (VALID.replace('enforce = "dry-run"\n', ""), {},
         "enforce: required (--enforce or the configuration file)"),
        (with_line("retention_days = 0"), {}, "{conf}: retention_days: must be >= 1 (got 0)"),
        (with_line("retention_days = true"), {},
         "{conf}: retention_days: must be an integer (got True)"),
        (with_line('rotate_bytes = "64M"'), {},
         "{conf}: rotate_bytes: must be an integer (got '64M')"),
        (with_line("rotate_bytes = 1000"), {}, "{conf}: rotate_bytes: must be >= 1024 (got 1000)"),
        (with_line("block_timeout_s = 1.5"), {},
         "{conf}: block_timeout_s: must be an integer (got 1.5)"),
        (with_line("metrics_port = 70000"), {},
         "{conf}: metrics_port: must be <= 65535 (got 70000)"),
        (with_line("fail_open_on_stop = 1"), {},
         "{conf}: fail_open_on_stop: must be true or false (got 1)"),
        (with_line("feed_retry_s = 0"), {}, "{conf}: feed_retry_s: must be > 0 (got 0)"),
        (with_line('feed_expire_s = "2h"'), {},
         "{conf}: feed_expire_s: must be a number (got '2h')"),
        (with_line("feed_max_bytes = 100"), {},
         "{conf}: feed_max_bytes: must be >= 1024 (got 100)"),
        (with_line('feed_max_bytes = "1G"'), {},
         "{conf}: feed_max_bytes: must be an integer (got '1G')"),
        (with_line("trust = []"), {}, "{conf}: trust: must not be empty (got [])"),
        (with_line('state_dir = ""'), {}, "{conf}: state_dir: must be a non-empty path"),
        (with_line('feed = ""'), {}, "{conf}: feed: must not be empty (got '')"),
        (with_line("token = 42"), {}, "{conf}: token: must be a string (got 42)"),
        (VALID, {"enforce": "drop"}, "--enforce: must be one of dry-run, nftables (got 'drop')"),
        (VALID, {"home": ("192.0.2.0/24", "nope")},
         "--home[1]: bad prefix: 'nope' does not appear to be an IPv4 or IPv6 network"),
        (with_line("retention_days = 0", VALID.replace('feed = "f"\n', "")), {},
         "feed: required (--feed or the configuration file); "
         "{conf}: retention_days: must be >= 1 (got 0)"),
        (with_line('capture = "nflog"'), {},
         "{conf}: capture: must be one of interface, conntrack (got 'nflog')"),
        (VALID, {"capture": "conntrack"}, "capture conntrack needs --interface"),
        (VALID.replace('pcap = "a"', 'interface = "eth1"'), {"shards": 2},
         "shards need --capture conntrack"),
        (VALID.replace('pcap = "a"', 'interface = "eth1"'),
         {"capture": "conntrack", "shards": 2, "shard": 2},
         "shard must be below shards (got shard 2 of 2)"),
        (with_line("capture_packets = 0"), {}, "{conf}: capture_packets: must be >= 1 (got 0)"),
    ],
    ids=["no-source", "two-sources", "unknown-key", "host-bits", "bad-enforce", "list-on-stale",
         "no-enforce", "zero-retention", "bool-for-int", "text-for-int", "small-rotation",
         "float-for-int", "port-range", "int-for-bool", "zero-seconds", "text-for-seconds",
         "small-feed-limit", "text-feed-limit",
         "no-trust", "empty-path", "empty-feed", "int-for-text", "bad-enforce-option",
         "bad-home-option", "two-problems", "bad-capture", "conntrack-on-a-file",
         "shards-without-conntrack", "shard-out-of-range", "no-packets"],
)  # fmt: skip
def test_refusals_name_where_the_value_came_from_and_the_key(
    tmp_path: Path, text: str, overrides: dict[str, object], message: str
) -> None:
    conf = tmp_path / "gateway.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(conf, overrides)
    assert str(caught.value) == message.format(conf=conf)


def test_a_file_that_is_not_toml_or_not_there_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "gateway.toml"
    conf.write_text("home = [")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(conf))}: not valid TOML: "):
        load(conf, {})
    conf.write_bytes(b'feed = "\xff"\n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(conf))}: not valid TOML: "):
        load(conf, {})
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: cannot read: "):
        load(missing, {})


def test_defaults_and_the_command_line_over_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "gw.toml"
    conf.write_text('interface = "eth1"\nfeed = "https://r.example/feed/v1"\ntrust = "k.pub"\n'
                    'home = ["198.51.100.0/24"]\nenforce = "nftables"\n')  # fmt: skip
    cfg = load(conf, {"enforce": "dry-run", "home": ("192.0.2.0/24",), "token": None})
    assert cfg.enforce is EnforceKind.DRY_RUN and cfg.home == (net("192.0.2.0/24"),)
    assert cfg.trust == (Path("k.pub"),) and cfg.token is None
    assert (cfg.block_timeout_s, cfg.fail_open_on_stop, cfg.refresh_s) == (600, True, 60.0)
    assert (cfg.retention_days, cfg.rotate_bytes, cfg.on_stale) == (30, 64 << 20, OnStale.KEEP)
    assert cfg.state_dir == Path("/var/lib/vpnreg/gateway") and cfg.metrics_port is None
    assert cfg.feed_max_bytes == 512 << 20
    assert load(conf, {"feed": str(tmp_path / "f.json")}).refresh_s == 0.5
    # an option left out (None, or no repeats) keeps the file's value
    assert load(conf, {"home": (), "enforce": None}).home == (net("198.51.100.0/24"),)
    assert load(None, {"pcap": tmp_path / "c.pcap", "feed": "f", "trust": (Path("k"),),
                       "home": ("2001:db8::/32",), "enforce": EnforceKind.NFTABLES}).source_label \
        == str(tmp_path / "c.pcap")  # fmt: skip


def test_numbers_keep_the_types_the_file_gave(tmp_path: Path) -> None:
    conf = tmp_path / "gw.toml"
    conf.write_text(VALID + "feed_refresh_s = 2\nfeed_retry_s = 0.5\nmetrics_port = 0\n")
    cfg = load(conf, {})
    assert (cfg.refresh_s, cfg.feed_retry_s, cfg.metrics_port) == (2.0, 0.5, 0)
    assert isinstance(cfg.feed_refresh_s, float)


def test_the_configuration_cannot_be_changed_once_loaded(tmp_path: Path) -> None:
    conf = tmp_path / "gw.toml"
    conf.write_text(VALID)
    cfg = load(conf, {})
    with pytest.raises(ValueError, match="frozen"):
        cfg.enforce = EnforceKind.NFTABLES  # type: ignore[misc]


def test_example_config_parses() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "gateway.example.toml"
    cfg = load(example, {})
    assert cfg.interface == "eth1" and cfg.enforce is EnforceKind.DRY_RUN
    assert cfg.fail_open_on_stop and cfg.retention_days == 30
    assert cfg.home == (net("198.51.100.0/24"), net("2001:db8:a::/48"))


@pytest.mark.parametrize(
    ("feed", "refresh_s"),
    [
        ("https://registry.example/feed/v1", 60.0),
        ("https://cdn.example/feed/notification.json", 5.0),
        ("snapshot.json", 0.5),
    ],
    ids=["api-long-poll", "static-notification", "snapshot-file"],
)
def test_feed_refresh_follows_the_source_kind(feed: str, refresh_s: float) -> None:
    assert load(None, {"pcap": "a", "feed": feed, "trust": ["k"], "home": ["10.0.0.0/8"],
                       "enforce": "dry-run"}).refresh_s == refresh_s  # fmt: skip


def test_conntrack_capture_reads_its_own_link_and_enforces_in_its_shards_table() -> None:
    base = {"interface": "eth1", "feed": "f", "trust": ("k",), "home": ("10.0.0.0/8",)}
    plain = load(None, {**base, "enforce": "nftables"})
    assert (plain.capture_source, plain.enforce_table, plain.conntrack_capture) == (
        "eth1", "vpnreg", None,
    )  # fmt: skip
    cfg = load(
        None,
        {**base, "enforce": "nftables", "capture": "conntrack", "shards": 2, "shard": 1,
         "capture_packets": 8},
    )  # fmt: skip
    capture = cfg.conntrack_capture
    assert capture is not None
    assert (capture.interface, capture.packets, capture.shard.index, capture.shard.of) == (
        "eth1", 8, 1, 2,
    )  # fmt: skip
    assert (cfg.capture_source, cfg.enforce_table) == ("vpnreg-cap1", "vpnreg1")
    assert cfg.source_label == "conntrack:eth1:1/2"
