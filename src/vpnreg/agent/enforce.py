"""The enforcement back-end protocol, and the dry-run back end that records and blocks nothing.

A back end owns its own piece of the gateway (for nftables: one table) and nothing else. Blocks
expire by themselves after the back end's timeout; the agent blocks again when the flow shows up
again, so a crashed agent leaves at most ``timeout`` seconds of stale blocks behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from vpnreg.clock import Clock
from vpnreg.core.policy import BlockKey

DEFAULT_TIMEOUT_S = 600

KeyPredicate = Callable[[BlockKey], bool]


@dataclass(frozen=True)
class ActiveBlock:
    """A block currently in force, with the seconds left before it expires."""

    key: BlockKey
    expires_in_s: float


class EnforcementBackend(Protocol):
    def start(self) -> None:
        """(Re)create the back end's state from scratch; idempotent."""

    def block(self, keys: Iterable[BlockKey]) -> None:
        """Block the keys (or refresh their timeout), all at once."""

    def unblock(self, keys: Iterable[BlockKey]) -> None:
        """Remove these blocks; keys not blocked are ignored."""

    def unblock_matching(self, predicate: KeyPredicate) -> tuple[BlockKey, ...]:
        """Remove every active block the predicate accepts; returns the keys removed."""

    def active_blocks(self) -> tuple[ActiveBlock, ...]: ...

    def stop(self) -> None:
        """Remove everything the back end made: the gateway fails open."""


class DryRunBackend:
    """Records what would have been blocked; touches nothing on the gateway."""

    def __init__(self, clock: Clock, *, timeout: int = DEFAULT_TIMEOUT_S) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._clock = clock
        self._timeout = dt.timedelta(seconds=timeout)
        self._expiry: dict[BlockKey, dt.datetime] = {}
        #: every block() request, in order, with its time: what enforcing would have done
        self.would_block: list[tuple[dt.datetime, BlockKey]] = []
        self.running = False

    def start(self) -> None:
        self._expiry.clear()
        self.running = True

    def block(self, keys: Iterable[BlockKey]) -> None:
        now = self._clock.now()
        for key in keys:
            self.would_block.append((now, key))
            self._expiry[key] = now + self._timeout

    def unblock(self, keys: Iterable[BlockKey]) -> None:
        for key in keys:
            self._expiry.pop(key, None)

    def unblock_matching(self, predicate: KeyPredicate) -> tuple[BlockKey, ...]:
        removed = tuple(a.key for a in self.active_blocks() if predicate(a.key))
        self.unblock(removed)
        return removed

    def active_blocks(self) -> tuple[ActiveBlock, ...]:
        now = self._clock.now()
        for key in [k for k, until in self._expiry.items() if until <= now]:
            del self._expiry[key]
        return tuple(
            ActiveBlock(key, (until - now).total_seconds()) for key, until in self._expiry.items()
        )

    def stop(self) -> None:
        self._expiry.clear()
        self.running = False
