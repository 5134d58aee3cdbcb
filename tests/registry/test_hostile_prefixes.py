"""Hostile prefix input through the registry's two front doors that take prefixes in bulk: a new
application (`vpnreg apply`, the API, the portal) and the legacy import. One table of cases;
each is refused with its reason code and nothing is written, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import approved
from vpnreg.clock import FrozenClock
from vpnreg.core.legacy_csv import FIELD_MAX, LEGACY_HEADER, parse_legacy_csv
from vpnreg.registry import services
from vpnreg.registry.errors import ValidationFailed
from vpnreg.registry.models import (
    ISP,
    Application,
    ApplicationPrefix,
    AuditLogRow,
    Claim,
    Organisation,
)

#: (prefix as typed, the reason code it is refused with)
HOSTILE = [
    ("10.20.0.0/24", "private", "bogon-private"),
    ("100.64.1.0/24", "cgnat", "bogon-cgnat"),
    ("127.0.0.0/24", "loopback", "bogon-loopback"),
    ("0.0.0.0/0", "too_broad", "default-route"),
    ("240.1.0.0/24", "reserved", "class-e"),
    ("224.1.1.0/24", "multicast", "multicast"),
    ("169.254.0.0/24", "link_local", "link-local"),
    ("192.88.99.0/24", "special_purpose", "special-6to4-relay"),
    ("fc00:1::/48", "private", "v6-unique-local"),
    ("2a00::/16", "too_broad", "too-broad-v6"),
    ("8.8.0.0/16", "too_broad", "too-broad-public"),
    ("192.0.2.1/24", "host_bits_set", "host-bits"),
    ("::ffff:192.0.2.0/120", "special_purpose", "ipv4-mapped"),
    ("fe80::1%eth0", "malformed", "zone-id"),
    ("fe80::%1/64", "malformed", "numeric-zone-id"),
    ("010.1.1.0/24", "malformed", "leading-zero"),
    ("192.0.2.0/24\n10.0.0.0/8", "malformed", "embedded-newline"),
    ("=1+1", "malformed", "formula"),
    ("@SUM(1)", "malformed", "formula-at"),
    ("+192.0.2.0/24", "malformed", "formula-plus"),
    ("-192.0.2.0/24", "malformed", "formula-minus"),
    ("\uff11\uff19\uff12.0.2.0/24", "malformed", "fullwidth-digits"),
]
CASES = [pytest.param(text, code, id=name) for text, code, name in HOSTILE]

TABLES = (Application, ApplicationPrefix, Claim, AuditLogRow, Organisation, ISP)


def counts(session: Session) -> tuple[int, ...]:
    return tuple(session.scalar(select(func.count()).select_from(model)) or 0 for model in TABLES)


@pytest.mark.parametrize(("text", "code"), CASES)
def test_an_application_refuses_the_prefix_with_its_reason(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    text: str, code: str,
) -> None:  # fmt: skip
    before = counts(session)
    with pytest.raises(ValidationFailed) as caught:
        services.create_application(
            session,
            organisation_id=world.soft_org,
            isp_id=world.isp,
            prefixes=[("198.51.100.0/24", []), (text, [])],
            actor=world.applicant,
            now=clock.now(),
            config=config,
        )
    assert [(e.field, e.code) for e in caught.value.errors] == [("prefixes[1]", code)]
    assert "\n" not in str(caught.value)
    assert counts(session) == before


@pytest.mark.parametrize(("text", "code"), CASES)
def test_an_import_refuses_the_row_with_its_reason_and_writes_nothing(
    session: Session, config: services.ServiceConfig, clock: FrozenClock, text: str, code: str
) -> None:
    before = counts(session)
    rows = [
        {"line": 2, "organisation": "Quetta Soft", "category": "software_house", "isp": "PTCL",
         "subscriber_id": "Q-1", "prefix": "198.51.100.0/24", "valid_until": "2027-01-31"},
        {"line": 3, "organisation": "Quetta Soft", "category": "software_house", "isp": "PTCL",
         "subscriber_id": "Q-2", "prefix": text, "valid_until": "2027-01-31"},
    ]  # fmt: skip
    report = services.import_legacy(session, rows=rows, now=clock.now(), config=config)
    assert [(p.line, p.field, p.code) for p in report.problems] == [(3, "prefix", code)]
    assert report.created == 0
    assert counts(session) == before


def test_overlaps_inside_an_application_and_with_a_registration_are_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    approved(session, world, config, clock.now(), [("203.0.113.0/24", [])], bank=True)
    before = counts(session)
    with pytest.raises(ValidationFailed) as caught:
        services.create_application(
            session,
            organisation_id=world.soft_org,
            isp_id=world.isp,
            prefixes=[("198.51.100.0/24", []), ("198.51.100.128/25", [])],
            actor=world.applicant,
            now=clock.now(),
            config=config,
        )
    assert [e.code for e in caught.value.errors] == ["overlap"]
    assert counts(session) == before
    report = services.import_legacy(
        session,
        rows=[{"line": 2, "organisation": "Quetta Soft", "category": "software_house",
               "isp": "PTCL", "subscriber_id": "", "prefix": "203.0.113.64/26",
               "valid_until": "2027-01-31"}],
        now=clock.now(),
        config=config,
    )  # fmt: skip
    assert [p.code for p in report.problems] == ["overlap"]
    assert counts(session) == before


def test_formula_cells_are_stored_as_literal_text(
    session: Session, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    # Deliberate (docs/reliability.md): names may begin with +, - or @, and nothing evaluates
    # them; the registry writes no CSV a spreadsheet could open.
    text = (
        ",".join(LEGACY_HEADER) + "\n"
        "\"=cmd|' /C calc'!A0\",bank,+92 Net,@S-1,198.51.100.0/24,2027-01-31\n"
        "-Minus Ltd,bank,+92 Net,=1+1,203.0.113.0/24,2027-01-31\n"
    )
    rows, problems = parse_legacy_csv(text)
    assert problems == []
    report = services.import_legacy(session, rows=rows, now=clock.now(), config=config)
    assert report.ok, report.problems
    names = set(session.scalars(select(Organisation.name)))
    assert {"=cmd|' /C calc'!A0", "-Minus Ltd"} <= names
    assert set(session.scalars(select(ISP.name))) >= {"+92 Net"}
    assert set(session.scalars(select(Application.subscriber_id))) >= {"@S-1", "=1+1"}
    assert services.verify_audit(session) is None


def test_the_longest_cells_the_csv_admits_fit_their_columns(
    session: Session, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    # FIELD_MAX is what keeps PostgreSQL from refusing a row half-way: it must match the columns.
    columns = {
        "organisation": Organisation.__table__.c.name,
        "category": Application.__table__.c.category,
        "isp": ISP.__table__.c.name,
        "subscriber_id": Application.__table__.c.subscriber_id,
    }
    for name, column in columns.items():
        assert FIELD_MAX[name] == column.type.length, name
    org, isp, sub = "O" * FIELD_MAX["organisation"], "I" * 200, "S" * FIELD_MAX["subscriber_id"]
    rows, problems = parse_legacy_csv(
        ",".join(LEGACY_HEADER) + f"\n{org},bank,{isp},{sub},198.51.100.0/24,2027-01-31\n"
    )
    assert problems == []
    report = services.import_legacy(session, rows=rows, now=clock.now(), config=config)
    assert report.ok and report.created == 1
