"""Opening the registry for one CLI command: settings, engine, session, service config, clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from vpnreg.cli.runtime import EXIT_REFUSED, clock, fail, load_settings
from vpnreg.clock import Clock
from vpnreg.core.excerpt import quoted
from vpnreg.registry import services
from vpnreg.registry.db import current_revision, make_engine, make_session_factory
from vpnreg.registry.errors import RegistryError, Unavailable, ValidationFailed
from vpnreg.registry.models import ISP, Organisation, SectorBody, User
from vpnreg.registry.views import ApplicationView, UserView
from vpnreg.settings import Settings

TRACKING_PREFIX = "VPN-"


@dataclass
class Registry:
    """What a registry command works with."""

    settings: Settings
    config: services.ServiceConfig
    session: Session
    clock: Clock

    def now(self) -> dt.datetime:
        return self.clock.now()

    def user(self, username: str) -> UserView:
        found = self.session.scalar(select(User).where(User.username == username))
        if found is None:
            fail(f"no user named {username!r}")
        return UserView.of(found)

    def id_by_name(self, model: type[Organisation | ISP | SectorBody], name: str) -> int:
        found = self.session.scalar(select(model.id).where(model.name == name))
        if found is None:
            kind = {Organisation: "organisation", ISP: "ISP", SectorBody: "sector body"}[model]
            fail(f"no {kind} named {name!r}")
        return found

    def audit_count(self) -> int:
        from sqlalchemy import func

        from vpnreg.registry.models import AuditLogRow

        return int(self.session.scalar(select(func.count()).select_from(AuditLogRow)) or 0)

    def application(self, ref: str) -> ApplicationView:
        """An application by numeric id or by tracking number (VPN-2026-7KQ3-M9XD)."""
        ref = ref.strip()
        if ref.upper().startswith(TRACKING_PREFIX):
            return services.find_application(self.session, tracking_number=ref.upper())
        if not ref.isdigit():
            fail(f"{ref!r} is neither an application id nor a tracking number", 2)
        return services.get_application(self.session, application_id=int(ref))


def error_lines(err: RegistryError) -> list[str]:
    """One line per problem: a validation failure lists every field it names."""
    if isinstance(err, ValidationFailed):
        lines = []
        for problem in err.errors:
            shown = problem.value
            value = (
                ""
                if shown in (None, "")
                else f" ({quoted(shown) if isinstance(shown, str) else shown!r})"
            )
            lines.append(f"{problem.field}: {problem.message} [{problem.code}]{value}")
        return lines
    if isinstance(err, Unavailable) and err.reason:
        return [f"{err} ({err.reason})"]
    return [str(err)]


@contextmanager
def open_registry(settings: Settings | None = None) -> Iterator[Registry]:
    """A registry session for one command; registry errors become one line each and exit 1."""
    from vpnreg.cli.runtime import say_error

    settings = settings or load_settings()
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            try:
                yield Registry(
                    settings=settings,
                    config=services.ServiceConfig.from_settings(settings),
                    session=session,
                    clock=clock(),
                )
            except RegistryError as err:
                session.rollback()
                lines = error_lines(err)
                for line in lines[:-1]:
                    say_error(line)
                fail(lines[-1], EXIT_REFUSED)
            except DBAPIError as err:
                session.rollback()
                fail(_database_trouble(settings, err), EXIT_REFUSED)
    finally:
        engine.dispose()


def _database_trouble(settings: Settings, err: DBAPIError) -> str:
    """One line on what is wrong with the database, with the fix when it is a missing schema."""
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        revision = current_revision(settings.database_url)
    except DBAPIError:
        revision = None
    if revision is None:
        return f"the database {url} has no schema yet: run `vpnreg db upgrade` first"
    return f"database error on {url}: {' '.join(str(err.orig).split())}"
