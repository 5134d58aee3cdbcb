"""ServiceConfig: what the services need from the settings, passed in explicitly."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from vpnreg.core.ipspace import PrefixPolicy
from vpnreg.settings import DEFAULT_ENDORSED_CATEGORIES

if TYPE_CHECKING:
    from vpnreg.settings import Settings


@dataclass(frozen=True)
class ServiceConfig:
    """The regulator's time zone, the prefix policy, endorsed categories, the ID hash key and
    the source of randomness for tracking numbers."""

    tz: dt.tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Karachi"))
    prefix_policy: PrefixPolicy = field(default_factory=PrefixPolicy)
    endorsed_categories: frozenset[str] = frozenset(DEFAULT_ENDORSED_CATEGORIES)
    id_hash_key: bytes = b"development-id-hash-key"
    #: Where tracking numbers get their random part (tests pass a seeded source).
    random_bytes: Callable[[int], bytes] = secrets.token_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceConfig:
        return cls(
            tz=ZoneInfo(settings.timezone),
            prefix_policy=PrefixPolicy(
                allow_documentation=settings.allow_documentation_prefixes,
                max_v4=settings.max_prefix_v4,
                max_v6=settings.max_prefix_v6,
            ),
            endorsed_categories=frozenset(settings.endorsed_categories),
            id_hash_key=settings.id_hash_key.encode(),
        )

    def needs_endorsement(self, category: str) -> bool:
        return category in self.endorsed_categories
