"""Demo data: fictional organisations, ISPs, sector bodies, users and applications in every state.

Everything goes through the registry services (so the audit log is real), on a clock that walks
forward from four months ago, so that registrations approved early have expired by today and
others are expiring. All addresses come from the documentation ranges (RFC 5737, RFC 3849): the
demo needs VPNREG_ALLOW_DOCUMENTATION_PREFIXES=1. Loading twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.bindings import BindingEvent
from vpnreg.core.gateway_report import CountKey, Report, hour_of
from vpnreg.core.review import Role, State
from vpnreg.registry import services
from vpnreg.registry.models import Application, User
from vpnreg.registry.services.bindings import report_events
from vpnreg.registry.services.gateway_reports import store_report
from vpnreg.registry.services.mode_trials import end_due_trials
from vpnreg.registry.views import ApplicationView, UserView

#: One password for every demo login; printed by `vpnreg demo`. Never use the demo in production.
DEMO_PASSWORD = "demo-password"  # noqa: S105 (printed to the user on purpose)
ADMIN = "admin"
SEED = 2024

ISPS = ("Indus Fibre", "Margalla Net", "Ravi Broadband", "Karakoram Telecom", "Sindh Data Link")
SECTOR_BODIES = {
    "Software Export Board": ("software_house", "freelancer"),
    "Contact Centre Council": ("call_centre",),
}
_FIRST = (
    "Ayesha",
    "Bilal",
    "Fatima",
    "Hamza",
    "Iqra",
    "Junaid",
    "Kiran",
    "Mahnoor",
    "Naveed",
    "Omer",
    "Rabia",
    "Saad",
    "Tooba",
    "Usman",
    "Zainab",
)
_STEMS = (
    "Crescent",
    "Indus",
    "Saffron",
    "Margalla",
    "Chenab",
    "Kohsar",
    "Nimbus",
    "Tarbela",
    "Lahore",
    "Mehran",
    "Pearl",
    "Shalimar",
    "Thar",
    "Zaytoon",
    "Gandhara",
    "Hunza",
    "Jhelum",
    "Kirthar",
)
_KINDS = {
    "software_house": ("Software House", "Labs", "Technologies", "Systems"),
    "call_centre": ("Contact Centre", "Call Solutions", "BPO"),
    "bank": ("Bank", "Microfinance Bank"),
    "foreign_mission": ("Embassy of Ruritania", "Consulate of Freedonia", "Embassy of Genovia"),
    "other": ("Logistics", "Textiles", "Research Institute"),
}
#: How many organisations of each category (50 in all).
CATEGORY_COUNTS = {
    "software_house": 16,
    "call_centre": 8,
    "freelancer": 12,
    "bank": 6,
    "foreign_mission": 3,
    "other": 5,
}
#: How many applications should end in each state (200 in all).
STATE_COUNTS: dict[State, int] = {
    State.DRAFT: 10,
    State.SUBMITTED: 18,
    State.ISP_VERIFIED: 14,
    State.SECTOR_ENDORSED: 10,
    State.APPROVED: 6,
    State.ACTIVE: 66,
    State.EXPIRING: 16,
    State.EXPIRED: 14,
    State.REJECTED: 10,
    State.APPEALED: 6,
    State.UPHELD: 5,
    State.REVOKED: 8,
    State.WITHDRAWN: 13,
    State.SUSPENDED: 4,
}


@dataclass
class Login:
    username: str
    role: str
    of: str


@dataclass
class DemoReport:
    created: bool
    logins: list[Login] = field(default_factory=list)
    applications: dict[str, int] = field(default_factory=dict)


def _prefixes() -> Iterator[str]:
    """Distinct prefixes from the documentation ranges: IPv4 /28s first, then IPv6 /48s."""
    for block in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"):
        for sub in ipaddress.ip_network(block).subnets(new_prefix=28):
            yield str(sub)
    yield from (str(s) for s in ipaddress.ip_network("2001:db8::/32").subnets(new_prefix=48))


def _peer(rng: random.Random) -> str:
    # Peers are the remote VPN servers or offices; documentation space stands in for them too.
    return f"2001:db8:ffff:{rng.randrange(0x1000, 0xFFFF):x}::/64"


class _Loader:
    """Walks the demo clock forward, calling services as the people in the story would."""

    def __init__(self, session: Session, config: services.ServiceConfig, now: dt.datetime):
        self.session = session
        self.config = config
        self.now = now
        self.rng = random.Random(SEED)
        self.prefixes = _prefixes()
        self.users: dict[str, UserView] = {}
        self.report = DemoReport(created=True)

    def _user(self, username: str, role: Role, of: str, at: dt.datetime, **scope: int) -> UserView:
        user = services.create_user(
            self.session,
            username=username,
            password=DEMO_PASSWORD,
            role=role,
            actor=ADMIN_ACTOR,
            now=at,
            **scope,
        )
        self.users[username] = user
        self.report.logins.append(Login(username, str(role), of))
        return user

    def people(
        self, at: dt.datetime
    ) -> tuple[list[tuple[int, str, UserView]], list[tuple[int, UserView]]]:
        for username, role in ((ADMIN, Role.ADMIN), ("auditor", Role.AUDITOR)):
            self._user(username, role, "", at)
        for i in (1, 2):
            self._user(f"regulator{i}", Role.REGULATOR, "telecom regulator", at)
        isps: list[tuple[int, UserView]] = []
        for i, name in enumerate(ISPS, 1):
            isp = services.create_isp(self.session, name=name, actor=ADMIN_ACTOR, now=at)
            isps.append((isp.id, self._user(f"isp{i}", Role.ISP, name, at, isp_id=isp.id)))
        for i, (name, categories) in enumerate(SECTOR_BODIES.items(), 1):
            body = services.create_sector_body(
                self.session, name=name, categories=list(categories), actor=ADMIN_ACTOR, now=at
            )
            self._user(f"sector{i}", Role.SECTOR_BODY, name, at, sector_body_id=body.id)
        orgs: list[tuple[int, str, UserView]] = []
        n = 0
        for category, count in CATEGORY_COUNTS.items():
            for _ in range(count):
                n += 1
                stem = _STEMS[n % len(_STEMS)]
                if category == "freelancer":
                    name = f"{_FIRST[n % len(_FIRST)]} {stem} (freelancer {n})"
                    extra = {"national_id": f"35202-{self.rng.randrange(10**6, 10**7)}-{n % 10}"}
                else:
                    kinds = _KINDS[category]
                    name = f"{stem} {kinds[n % len(kinds)]} {n}"
                    extra = {"registration_number": f"0{self.rng.randrange(10**6, 10**7)}"}
                org = services.create_organisation(
                    self.session,
                    name=name,
                    category=category,
                    actor=ADMIN_ACTOR,
                    now=at,
                    config=self.config,
                    **extra,
                )
                user = self._user(f"applicant{n}", Role.APPLICANT, name, at, organisation_id=org.id)
                orgs.append((org.id, category, user))
        return orgs, isps

    def application(
        self, org: tuple[int, str, UserView], isp: tuple[int, UserView], at: dt.datetime
    ) -> ApplicationView:
        count = 1 + (self.rng.random() < 0.3)
        requests = []
        for _ in range(count):
            peers = [_peer(self.rng)] if self.rng.random() < 0.25 else []
            requests.append((next(self.prefixes), peers))
        return services.create_application(
            self.session,
            organisation_id=org[0],
            isp_id=isp[0],
            prefixes=requests,
            actor=org[2],
            now=at,
            config=self.config,
        )

    def step(
        self, app: ApplicationView, verb: str, actor: UserView, at: dt.datetime, **kw: str
    ) -> ApplicationView:
        step = services.StepRequest(
            action=verb,
            application_id=app.id,
            actor=actor,
            expected_version=app.version,
            arguments=kw,
        )
        return services.take_step(self.session, step, now=at, config=self.config)

    def walk(
        self,
        app: ApplicationView,
        target: State,
        org: tuple[int, str, UserView],
        isp_user: UserView,
        at: dt.datetime,
    ) -> None:
        """Move a fresh draft along the path that ends in `target` (each step gives the next
        its version)."""
        applicant = org[2]
        sector = self._sector_user(org[1])
        regulator, other_regulator = self.users["regulator1"], self.users["regulator2"]
        gap = dt.timedelta(hours=3)
        if target is State.DRAFT:
            return
        app = self.step(app, "submit", applicant, at)
        if target is State.SUBMITTED:
            return
        if target is State.WITHDRAWN:
            app = self.step(app, "withdraw", applicant, at + gap)
            return
        if target in (State.REJECTED, State.APPEALED, State.UPHELD) and self.rng.random() < 0.4:
            app = self.step(
                app,
                "reject",
                isp_user,
                at + gap,
                reason_code="not_subscriber",
                reason="The ISP has no record of these addresses on this account.",
            )
        else:
            app = self.step(app, "verify", isp_user, at + gap)
            if target is State.ISP_VERIFIED:
                return
            if sector is not None:
                app = self.step(app, "endorse", sector, at + 2 * gap)
            if target is State.SECTOR_ENDORSED and sector is not None:
                return
            if target in (State.REJECTED, State.APPEALED, State.UPHELD):
                app = self.step(
                    app,
                    "reject",
                    regulator,
                    at + 3 * gap,
                    reason_code="insufficient_need",
                    reason="The documents do not show a business need for a VPN.",
                )
            else:
                app = self.step(app, "approve", regulator, at + 3 * gap)
                if target is State.SUSPENDED:
                    app = self.step(
                        app,
                        "withdraw_attestation",
                        isp_user,
                        at + 10 * gap,
                        reason="The line was cancelled; the address now belongs to another "
                        "subscriber.",
                    )
                if target is State.REVOKED:
                    app = self.step(
                        app,
                        "revoke",
                        regulator,
                        at + 20 * gap,
                        reason_code="misuse",
                        reason="Registered addresses were used to resell VPN access.",
                    )
                return
        if target is State.REJECTED:
            return
        app = self.step(
            app,
            "appeal",
            applicant,
            at + 8 * gap,
            text="We attach the ISP's letter confirming the allocation.",
        )
        if target is State.UPHELD:
            app = self.step(
                app,
                "uphold",
                other_regulator,
                at + 16 * gap,
                reason="The letter does not cover these addresses.",
            )

    def _sector_user(self, category: str) -> UserView | None:
        for i, categories in enumerate(SECTOR_BODIES.values(), 1):
            if category in categories:
                return self.users[f"sector{i}"]
        return None


#: The trusted actor of demo set-up steps that no person performs (creating logins, bodies).
ADMIN_ACTOR = "cli:demo"

#: Subscriber-bound registrations (issue 17): the ISP account, the state, the protocols, and
#: the address the ISP binds to it now (None: none yet). IPv6, clear of the demo's prefixes.
SUBSCRIBER_BOUND: tuple[tuple[str, State, tuple[str, ...], str | None], ...] = (
    ("DEMO-ACC-1001", State.ACTIVE, ("wireguard",), "2001:db8:ffff:1::/64"),
    ("DEMO-ACC-1002", State.ACTIVE, (), "2001:db8:ffff:2::/64"),
    ("DEMO-ACC-1003", State.SUBMITTED, ("openvpn", "ipsec"), None),
)


def _subscriber_bound(
    loader: _Loader,
    orgs: list[tuple[int, str, UserView]],
    isps: list[tuple[int, UserView]],
    now: dt.datetime,
) -> None:
    """A few registrations that follow their ISP account, and the addresses bound to them."""
    isp_id, isp_user = isps[0]
    for n, (account, target, protocols, address) in enumerate(SUBSCRIBER_BOUND):
        org = orgs[n]
        at = now - dt.timedelta(days=10, minutes=-7 * n)
        app = services.create_application(
            loader.session,
            organisation_id=org[0],
            isp_id=isp_id,
            prefixes=[],
            subscriber_id=account,
            protocols=protocols,
            actor=org[2],
            now=at,
            config=loader.config,
        )
        loader.walk(app, target, org, isp_user, at)
        if address is not None:
            report_events(
                loader.session,
                actor=ADMIN_ACTOR,
                isp_id=isp_id,
                events=[BindingEvent("start", account, f"demo-{n}", address)],
                now=now,
                config=loader.config,
            )


def _plan(orgs: list[tuple[int, str, UserView]]) -> list[tuple[State, tuple[int, str, UserView]]]:
    """Which organisation's application ends in which state; endorsement-free states only for
    categories that skip the sector step, so every count is reachable."""
    plan: list[tuple[State, tuple[int, str, UserView]]] = []
    endorsed = [o for o in orgs if o[1] in {c for cs in SECTOR_BODIES.values() for c in cs}]
    i = 0
    for state, count in STATE_COUNTS.items():
        pool = endorsed if state is State.SECTOR_ENDORSED else orgs
        for _ in range(count):
            plan.append((state, pool[i % len(pool)]))
            i += 1
    return plan


#: Days of blocked-flow history the demo's gateway reported, for the statistics page's chart.
HISTORY_DAYS = 30


def _blocked_history(session: Session, now: dt.datetime) -> None:
    """One report a day from gw-isb-1 over HISTORY_DAYS, counting unregistered VPN flows per
    protocol (seeded, so every demo has the same figures); stored before the latest reports."""
    rng = random.Random(19)
    for days in range(HISTORY_DAYS, 0, -1):
        at = now - dt.timedelta(days=days)
        hour = hour_of(at)
        counts = tuple(
            (CountKey(hour, protocol, "unregistered"), rng.randint(low, high))
            for protocol, low, high in (
                ("wireguard", 20, 90),
                ("openvpn", 10, 60),
                ("ipsec", 1, 15),
            )
        )
        store_report(
            session,
            report=Report(
                report_id=hashlib.sha256(f"demo gw-isb-1 day {days}".encode()).hexdigest()[:32],
                gateway_id="gw-isb-1",
                created=at,
                mode="nftables",
                feed=None,
                counts=counts,
            ),
            token_name="demo",  # noqa: S106 - a token's name, not a secret
            now=at,
        )


def _gateway_reports(session: Session, now: dt.datetime) -> None:
    """Two gateways' latest reports: one current, one that stopped reporting two hours ago."""
    _blocked_history(session, now)
    active = session.scalars(
        select(Application.id).where(Application.state == State.ACTIVE.value).limit(3)
    ).all()
    for name, ago in (("gw-isb-1", dt.timedelta(minutes=2)), ("gw-khi-1", dt.timedelta(hours=2))):
        at = now - ago
        hour = hour_of(at)
        counts = [
            (CountKey(hour, "wireguard", "registered", registration_id=app_id), 3 + i)
            for i, app_id in enumerate(active)
        ]
        counts.append((CountKey(hour, "openvpn", "unregistered", prefix="198.51.100.0/24"), 2))
        store_report(
            session,
            report=Report(
                report_id=hashlib.sha256(f"demo {name}".encode()).hexdigest()[:32],
                gateway_id=name,
                created=at,
                mode="nftables",
                feed=None,
                counts=tuple(counts),
            ),
            token_name="demo",  # noqa: S106 - a token's name, not a secret
            now=at,
        )


def _mode_changes(
    session: Session, config: services.ServiceConfig, now: dt.datetime, regulator: UserView
) -> None:
    """The launch week in dry run (a national trial, ended at its planned end), and a WireGuard
    trial under way: the public /mode-changes page has both kinds to show."""
    launch = now - dt.timedelta(days=27)
    services.set_mode(
        session,
        mode="dry-run",
        reason="Launch: the first week only counts unregistered VPN flows, it blocks none",
        until=launch + dt.timedelta(days=7),
        actor=regulator,
        now=launch,
        config=config,
    )
    end_due_trials(session, now=launch + dt.timedelta(days=7), config=config)
    services.set_mode(
        session,
        mode="dry-run",
        protocol="wireguard",
        reason="Trial of the new WireGuard handshake rule: counted, not blocked, for a week",
        until=now + dt.timedelta(days=6),
        actor=regulator,
        now=now - dt.timedelta(days=1),
        config=config,
    )


def load_demo(session: Session, *, config: services.ServiceConfig, now: dt.datetime) -> DemoReport:
    """Load the demo data unless it is there already; returns the logins either way."""
    if session.scalar(select(User.id).where(User.username == ADMIN)) is not None:
        report = DemoReport(created=False)
        for user in session.scalars(select(User).order_by(User.id)):
            report.logins.append(Login(user.username, user.role, ""))
        return report
    start = now - dt.timedelta(days=125)
    loader = _Loader(session, config, now)
    orgs, isps = loader.people(start)
    plan = _plan(orgs)
    # When each application starts, so that time alone brings it to its state by `now`:
    # provisional registrations last 90 days.
    started = {
        State.EXPIRED: now - dt.timedelta(days=120),
        State.EXPIRING: now - dt.timedelta(days=75),
        State.REVOKED: now - dt.timedelta(days=60),
    }
    ordered = sorted(
        enumerate(plan), key=lambda item: started.get(item[1][0], now - dt.timedelta(days=20))
    )
    expiring: list[ApplicationView] = []
    for n, (state, org) in ordered:
        at = started.get(state, now - dt.timedelta(days=20)) + dt.timedelta(minutes=7 * n)
        isp_id, isp_user = isps[n % len(isps)]
        target = State.EXPIRING if state is State.APPROVED else state
        app = loader.application(org, (isp_id, isp_user), at)
        loader.walk(
            app,
            target if target not in (State.EXPIRED, State.EXPIRING) else State.ACTIVE,
            org,
            isp_user,
            at,
        )
        if state is State.APPROVED:
            expiring.append(app)
    services.advance_time(session, now=now - dt.timedelta(days=1), config=config)
    # "Approved" means approved but not yet valid: renewals of expiring registrations, which
    # start when the old ones end.
    for k, old in enumerate(expiring):
        org = next(o for o in orgs if o[0] == old.organisation_id)
        at = now - dt.timedelta(hours=20 - k)
        # Time has moved it on (activated, marked expiring): act on its current version.
        current = services.get_application(session, application_id=old.id)
        renewal = loader.step(current, services.RENEW, org[2], at)
        isp_user = next(u for i, u in isps if i == renewal.isp_id)
        renewal = loader.step(renewal, "verify", isp_user, at + dt.timedelta(minutes=10))
        sector = loader._sector_user(org[1])
        if sector is not None:
            renewal = loader.step(renewal, "endorse", sector, at + dt.timedelta(minutes=20))
        loader.step(renewal, "approve", loader.users["regulator1"], at + dt.timedelta(minutes=30))
    services.advance_time(session, now=now, config=config)
    _subscriber_bound(loader, orgs, isps, now)
    _gateway_reports(session, now)
    _mode_changes(session, config, now, loader.users["regulator1"])
    report = loader.report
    for stored in session.scalars(select(Application.state)):
        report.applications[stored] = report.applications.get(stored, 0) + 1
    return report
