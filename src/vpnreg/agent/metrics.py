"""Prometheus metrics of the gateway agent, on a CollectorRegistry the caller owns.

Counters and gauges are updated by the pipeline as it decides; `blocks active` and `feed age` are
read when scraped (callbacks), so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds between a flow's hand-over point and its decision: the goal is well under one.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.flows_seen = Counter(
            "vpnreg_gateway_flows", "Flows handed over by the flow meter.", registry=registry
        )
        self.vpn_flows = Counter(
            "vpnreg_gateway_vpn_flows",
            "Flows classified as VPN, by VPN protocol.",
            ["protocol"],
            registry=registry,
        )
        self.verdicts = Counter(
            "vpnreg_gateway_verdicts",
            "Policy verdicts on VPN flows, by verdict and action.",
            ["verdict", "action"],
            registry=registry,
        )
        self.blocks_active = Gauge(
            "vpnreg_gateway_blocks_active",
            "Block keys in force in the enforcement back end (would-be blocks in dry-run).",
            registry=registry,
        )
        self.feed_serial = Gauge(
            "vpnreg_gateway_feed_serial",
            "Serial of the feed state enforced (0: none).",
            registry=registry,
        )
        self.feed_age = Gauge(
            "vpnreg_gateway_feed_age_seconds",
            "Seconds since the enforced feed state was created (-1: none).",
            registry=registry,
        )
        self.feed_stale = Gauge(
            "vpnreg_gateway_feed_stale",
            "1 when no fresh verified feed arrived within the expiry time.",
            registry=registry,
        )
        self.processing_lag = Histogram(
            "vpnreg_gateway_processing_lag_seconds",
            "Seconds from the packet that completed detection to the decision (live only).",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def watch(
        self,
        *,
        blocks_active: Callable[[], float],
        feed_age: Callable[[], float],
        feed_stale: Callable[[], float],
    ) -> None:
        self.blocks_active.set_function(blocks_active)
        self.feed_age.set_function(feed_age)
        self.feed_stale.set_function(feed_stale)
