"""Importing the legacy registry: all rows or none, every problem reported with its line.

Built for tens of thousands of rows: prefixes are checked in memory, overlaps found with one
sort (overlapping_pairs) over the file and the claims in force, rows written with bulk inserts,
and the audit chain hashed in a loop with no query per row.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from vpnreg.core.ipspace import Network, PrefixError, overlapping_pairs, validate_prefix
from vpnreg.core.review import State, validity_end
from vpnreg.registry.audit_log import AuditChain
from vpnreg.registry.claims import range_keys
from vpnreg.registry.models import (
    ISP,
    Application,
    ApplicationPrefix,
    Category,
    Claim,
    Organisation,
)
from vpnreg.registry.services.applications import new_tracking_numbers
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.transaction import service_transaction

ACTOR = "cli:import"
_FIELDS = ("organisation", "category", "isp", "subscriber_id", "prefix", "valid_until")


#: Called with (stage, rows done, rows in all) while an import runs.
Progress = Callable[[str, int, int], None]
#: How often (in rows) an import reports its progress.
PROGRESS_EVERY = 500


def _no_progress(stage: str, done: int, total: int) -> None:
    """The default: nobody is watching."""


@dataclass(frozen=True)
class ImportProblem:
    """One problem of one row: the file line, the column, a code, a message, the bad value."""

    line: int
    field: str
    code: str
    message: str
    value: str


@dataclass(frozen=True)
class ImportReport:
    """What an import did: nothing at all when `problems` is not empty."""

    rows: int
    created: int = 0
    organisations_created: int = 0
    isps_created: int = 0
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Row:
    line: int
    organisation: str
    category: str
    isp: str
    subscriber_id: str
    prefix: str
    valid_until: str
    network: Network | None = None
    until: dt.date | None = None


def _as_row(raw: Mapping[str, Any] | Any) -> _Row:
    get = raw.get if isinstance(raw, Mapping) else lambda k: getattr(raw, k, None)
    values = {k: str(get(k) or "").strip() for k in _FIELDS}
    return _Row(
        line=int(get("line") or 0),
        organisation=values["organisation"],
        category=values["category"],
        isp=values["isp"],
        subscriber_id=values["subscriber_id"],
        prefix=values["prefix"],
        valid_until=values["valid_until"],
    )


def import_legacy(
    session: Session,
    *,
    rows: Iterable[Mapping[str, Any] | Any],
    now: dt.datetime,
    config: ServiceConfig,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Create an ACTIVE registration, valid from `now` to its valid_until, for every row.

    Each row is a mapping (or an object such as core.legacy_csv.LegacyRow) with line,
    organisation, category, isp, subscriber_id, prefix and valid_until (YYYY-MM-DD).
    Missing organisations and ISPs are created by exact name. Nothing is written unless every
    row is good; the report then lists every problem found. With `dry_run`, every check runs
    and the report says what would be created, but nothing is written. `progress(stage, done,
    total)` is called as the rows are checked and written (for a progress bar on long files).
    """
    report_progress: Progress = progress or _no_progress
    items = [_as_row(r) for r in rows]
    problems: list[ImportProblem] = []
    today = now.astimezone(config.tz).date()
    categories = {c.value for c in Category}

    def problem(row: _Row, fld: str, code: str, message: str) -> None:
        problems.append(ImportProblem(row.line, fld, code, message, getattr(row, fld)))

    for n, row in enumerate(items, 1):
        if n % PROGRESS_EVERY == 0 or n == len(items):
            report_progress("checking", n, len(items))
        if not row.organisation:
            problem(row, "organisation", "required", "organisation is empty")
        if not row.isp:
            problem(row, "isp", "required", "isp is empty")
        if row.category not in categories:
            problem(row, "category", "unknown_category", f"unknown category {row.category!r}")
        try:
            row.network = validate_prefix(row.prefix, config.prefix_policy)
        except PrefixError as exc:
            problem(row, "prefix", str(exc.code), exc.message)
        try:
            row.until = dt.date.fromisoformat(row.valid_until)
        except ValueError:
            problem(
                row, "valid_until", "malformed", f"{row.valid_until!r} is not a YYYY-MM-DD date"
            )
        else:
            if row.until < today:
                problem(row, "valid_until", "past", f"{row.valid_until} is in the past")

    with service_transaction(session):
        # The audit head is locked before anything is checked: an import (or any writer)
        # running meanwhile finishes first, and the checks below then see what it wrote, so
        # two imports of one file started together give one import and one clean refusal
        # (PostgreSQL; on SQLite the write unit's BEGIN IMMEDIATE already serialises them).
        chain = None if dry_run else AuditChain(session)
        orgs = {o.name: o for o in session.scalars(select(Organisation))}
        isps = {i.name: i.id for i in session.scalars(select(ISP))}
        new_org_category: dict[str, tuple[str, int]] = {}
        for row in items:
            if not row.organisation or row.category not in categories:
                continue
            existing = orgs.get(row.organisation)
            if existing is not None and existing.category != row.category:
                problem(
                    row,
                    "category",
                    "category_mismatch",
                    f"{row.organisation!r} is registered as {existing.category}",
                )
            elif existing is None:
                seen = new_org_category.setdefault(row.organisation, (row.category, row.line))
                if seen[0] != row.category:
                    problem(
                        row,
                        "category",
                        "category_mismatch",
                        f"line {seen[1]} gives {row.organisation!r} category {seen[0]}",
                    )

        good = [r for r in items if r.network is not None]
        for a, b in overlapping_pairs([r.network for r in good if r.network is not None]):
            first, later = good[a], good[b]
            problem(
                later,
                "prefix",
                "overlap",
                f"{later.prefix} overlaps {first.prefix} on line {first.line}",
            )
        _check_registry_overlaps(session, good, now, config, problem)
        if problems:
            problems.sort(key=lambda p: (p.line, _FIELDS.index(p.field)))
            session.rollback()
            return ImportReport(rows=len(items), problems=problems)
        if dry_run:
            session.rollback()
            return ImportReport(
                rows=len(items),
                created=len(items),
                organisations_created=len({r.organisation for r in items} - orgs.keys()),
                isps_created=len({r.isp for r in items} - isps.keys()),
            )
        assert chain is not None
        return _write(session, chain, items, orgs, isps, now, config, report_progress)


def _check_registry_overlaps(
    session: Session, good: list[_Row], now: dt.datetime, config: ServiceConfig, problem: Any
) -> None:
    claims = session.execute(
        select(Claim.prefix_text, Claim.valid_from, Claim.valid_end, Application.tracking_number)
        .join(Application, Application.id == Claim.application_id)
        .where(Claim.valid_end > now)
    ).all()
    if not claims or not good:
        return
    held = [ipaddress.ip_network(c.prefix_text) for c in claims]
    mine = [r.network for r in good if r.network is not None]
    for a, b in overlapping_pairs(held + mine):
        if a >= len(held) or b < len(held):
            continue  # both held (allowed to exist) or both new (reported above)
        claim, row = claims[a], good[b - len(held)]
        if row.until is None or claim.valid_from >= validity_end(row.until, config.tz):
            continue
        problem(
            row,
            "prefix",
            "overlap",
            f"{row.prefix} overlaps {claim.prefix_text} of registration {claim.tracking_number}",
        )


def _write(
    session: Session,
    chain: AuditChain,
    items: list[_Row],
    orgs: dict[str, Organisation],
    isps: dict[str, int],
    now: dt.datetime,
    config: ServiceConfig,
    report_progress: Progress,
) -> ImportReport:
    org_ids = {name: o.id for name, o in orgs.items()}
    new_orgs = new_isps = 0
    for row in items:
        if row.organisation not in org_ids:
            org = Organisation(name=row.organisation, category=row.category, created_at=now)
            session.add(org)
            session.flush()
            org_ids[org.name] = org.id
            new_orgs += 1
            chain.append(
                time=now,
                actor=ACTOR,
                action="create_organisation",
                object_type="organisation",
                object_id=org.id,
                before=None,
                after={"id": org.id, "name": org.name, "category": org.category},
            )
        if row.isp not in isps:
            isp = ISP(name=row.isp, created_at=now)
            session.add(isp)
            session.flush()
            isps[isp.name] = isp.id
            new_isps += 1
            chain.append(
                time=now,
                actor=ACTOR,
                action="create_isp",
                object_type="isp",
                object_id=isp.id,
                before=None,
                after={"id": isp.id, "name": isp.name},
            )
    app_rows = [
        {
            "organisation_id": org_ids[r.organisation],
            "isp_id": isps[r.isp],
            "category": r.category,
            "subscriber_id": r.subscriber_id or None,
            "state": State.ACTIVE.value,
            "version": 1,
            "valid_from": now,
            "valid_until": r.until,
            "created_by": ACTOR,
            "created_at": now,
            "updated_at": now,
        }
        for r in items
    ]
    ids = list(
        session.scalars(
            insert(Application).returning(Application.id, sort_by_parameter_order=True),
            app_rows,
        )
    )
    numbers = new_tracking_numbers(session, now=now, config=config, count=len(ids))
    table = Application.__table__
    assert isinstance(table, Table)
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(tracking_number=bindparam("b_tn")),
        [{"b_id": i, "b_tn": n} for i, n in zip(ids, numbers, strict=True)],
    )
    prefix_rows = []
    claim_rows = []
    for app_id, row in zip(ids, items, strict=True):
        assert row.network is not None and row.until is not None
        start, end = range_keys(row.network)
        text = str(row.network)
        prefix_rows.append(
            {
                "application_id": app_id,
                "position": 0,
                "prefix": text,
                "range_start": start,
                "range_end": end,
            }
        )
        claim_rows.append(
            {
                "application_id": app_id,
                "prefix_text": text,
                "range_start": start,
                "range_end": end,
                "valid_from": now,
                "valid_end": validity_end(row.until, config.tz),
            }
        )
    session.execute(insert(ApplicationPrefix), prefix_rows)
    session.execute(insert(Claim), claim_rows)
    for n, (app_id, number, row, app_row) in enumerate(
        zip(ids, numbers, items, app_rows, strict=True), 1
    ):
        if n % PROGRESS_EVERY == 0 or n == len(items):
            report_progress("writing", n, len(items))
        chain.append(
            time=now,
            actor=ACTOR,
            action="import",
            object_type="application",
            object_id=app_id,
            before=None,
            after={
                "id": app_id,
                "tracking_number": number,
                "organisation_id": app_row["organisation_id"],
                "isp_id": app_row["isp_id"],
                "category": row.category,
                "subscriber_id": app_row["subscriber_id"],
                "state": State.ACTIVE.value,
                "version": 1,
                "valid_from": now.isoformat(),
                "valid_until": row.valid_until,
                "prefixes": [{"prefix": str(row.network), "peers": []}],
                "line": row.line,
            },
        )
    chain.write()
    return ImportReport(
        rows=len(items), created=len(ids), organisations_created=new_orgs, isps_created=new_isps
    )
