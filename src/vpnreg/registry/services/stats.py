"""Figures about the registry: applications by state and category, registered prefixes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vpnreg.core.review import REGISTERED_STATES
from vpnreg.registry.models import Application, ApplicationPrefix, Organisation


@dataclass(frozen=True)
class RegistryStats:
    """Counts only: nothing here names an organisation or a subscriber."""

    applications: int
    organisations: int
    registered_prefixes: int
    by_state: dict[str, int]
    by_category: dict[str, int]


def registry_stats(session: Session) -> RegistryStats:
    by_state = {
        state: int(n)
        for state, n in session.execute(
            select(Application.state, func.count()).group_by(Application.state)
        )
    }
    by_category = {
        category: int(n)
        for category, n in session.execute(
            select(Application.category, func.count()).group_by(Application.category)
        )
    }
    registered = session.scalar(
        select(func.count())
        .select_from(ApplicationPrefix)
        .join(Application, Application.id == ApplicationPrefix.application_id)
        .where(Application.state.in_([s.value for s in REGISTERED_STATES]))
    )
    organisations = session.scalar(select(func.count()).select_from(Organisation))
    return RegistryStats(
        applications=sum(by_state.values()),
        organisations=int(organisations or 0),
        registered_prefixes=int(registered or 0),
        by_state=dict(sorted(by_state.items())),
        by_category=dict(sorted(by_category.items())),
    )
