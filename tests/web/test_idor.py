"""Object scope (IDOR): every role iterates application ids over every read route that names one,
and organisation ids over the organisation routes.

The world holds applications of two organisations (a software house, covered by the sector body,
and a bank, which is not) through two ISPs, drafts and submitted ones, each with a document. The
expected scope of each caller is computed from the rows themselves (organisation for applicants,
ISP for ISP clerks, covered categories for the sector body, everything for the oversight roles),
not from the registry's own visibility query. A caller the policy lets onto a route gets the
object in its scope and 404 for every other id, existing or not (never 403: existence is not told).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from tests.api.harness import Api, build_api, database_url
from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.models import Application, SectorBodyCategory, User
from vpnreg.web.policy import access_for, allows, effective_routes

#: Callers with a person behind them, by harness name (two of a kind where scope differs).
PEOPLE = ("ali", "bina", "noc", "ptcl-noc", "pasha", "reg1", "auditor", "admin")
#: Ids past the last one: they do not exist, and must look exactly like someone else's.
BEYOND = 3


@dataclass(frozen=True)
class Built:
    api: Api
    #: Document id of each application.
    documents: dict[int, int]


@pytest.fixture(scope="module")
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    urls = database_url("sqlite", tmp_path_factory, request)
    api = build_api(next(urls), tmp_path_factory.mktemp("data"))
    try:
        documents: dict[int, int] = {}
        n = 0
        for who in ("ali", "bina"):
            for isp in (api.world.isp, api.world.other_isp):
                for submit in (False, True):
                    n += 1
                    app_id = int(str(api.create(who, [f"198.51.100.{16 * n}/28"], isp=isp)["id"]))
                    uploaded = api.client(who).post(
                        f"/api/v1/applications/{app_id}/documents",
                        files={"file": (f"doc{app_id}.pdf", b"%PDF-1.4\n%x\n%%EOF\n")},
                        data={"kind": "k"},
                    )
                    assert uploaded.status_code == 201, uploaded.text
                    documents[app_id] = int(uploaded.json()["id"])
                    if submit:
                        api.step(who, app_id, "submit")
        yield Built(api, documents)
    finally:
        api.app.state.database.dispose()
        next(urls, None)


def _expected_scope(api: Api) -> dict[str, set[int]]:
    """Each caller's applications, from the rows (organisation, ISP, covered category)."""
    engine = make_engine(api.url)
    try:
        with make_session_factory(engine)() as session:
            apps = list(session.scalars(select(Application)))
            scope: dict[str, set[int]] = {}
            for who in PEOPLE:
                user = session.scalars(
                    select(User).where(User.username == api.usernames.get(who, who))
                ).one()
                if user.role == "applicant":
                    mine = {a.id for a in apps if a.organisation_id == user.organisation_id}
                elif user.role == "isp":
                    mine = {a.id for a in apps if a.isp_id == user.isp_id}
                elif user.role == "sector_body":
                    covered = set(
                        session.scalars(
                            select(SectorBodyCategory.category).where(
                                SectorBodyCategory.sector_body_id == user.sector_body_id
                            )
                        )
                    )
                    mine = {a.id for a in apps if a.category in covered}
                else:
                    mine = {a.id for a in apps}
                scope[who] = mine
            return scope
    finally:
        engine.dispose()


def _object_routes(api: Api) -> list[str]:
    """Every GET route whose path names an application (API and portal)."""
    return sorted(
        entry.path
        for entry in effective_routes(api.app)
        if entry.enforced and "GET" in entry.methods and "{application_id}" in entry.path
    )


def _role(api: Api, who: str) -> str:
    return str(api.client(who).get("/api/v1/me").json()["role"])


def test_the_world_gives_every_kind_of_caller_a_partial_or_full_scope(built: Built) -> None:
    scope = _expected_scope(built.api)
    every = set(built.documents)
    assert len(every) == 8
    for who in ("ali", "bina", "noc", "ptcl-noc", "pasha"):
        assert scope[who] and scope[who] < every, who
    assert scope["ali"].isdisjoint(scope["bina"]) and scope["noc"].isdisjoint(scope["ptcl-noc"])
    for who in ("reg1", "auditor", "admin"):
        assert scope[who] == every
    routes = _object_routes(built.api)
    for path in ("/applications/{application_id}", "/queue/{application_id}"):
        assert path in routes
    assert sum(p.startswith("/api/v1/") for p in routes) >= 4


def test_every_role_sees_exactly_its_scope_and_404_elsewhere(built: Built) -> None:
    api = built.api
    scope = _expected_scope(api)
    last = max(built.documents)
    wrong: list[str] = []
    for who in PEOPLE:
        role = _role(api, who)
        client = api.client(who)
        for path in _object_routes(api):
            if not allows(access_for(api.app.state.policy, "GET", path), role):
                continue  # the authorization matrix covers refusals by role
            for app_id in range(1, last + BEYOND + 1):
                # A document id that exists, of this application (or of the first one past).
                document_id = built.documents.get(app_id, max(built.documents.values()) + 1)
                url = path.replace("{application_id}", str(app_id)).replace(
                    "{document_id}", str(document_id)
                )
                status = client.get(url, follow_redirects=False).status_code
                visible = app_id in scope[who]
                # The check-your-answers page of a submitted application sends to its page.
                shown = {200, 303} if path.endswith("/check") else {200}
                if (visible and status not in shown) or (not visible and status != 404):
                    wrong.append(f"{who} GET {url}: {status} (in scope: {visible})")
    assert wrong == []


def test_a_document_of_another_application_is_404_under_an_own_application(built: Built) -> None:
    api = built.api
    scope = _expected_scope(api)
    own = min(scope["ali"])
    foreign = [d for a, d in built.documents.items() if a not in scope["ali"]]
    client = api.client("ali")
    for document_id in foreign:
        for url in (
            f"/api/v1/applications/{own}/documents/{document_id}",
            f"/applications/{own}/documents/{document_id}",
        ):
            assert client.get(url).status_code == 404, url


def test_every_role_lists_exactly_its_scope(built: Built) -> None:
    api = built.api
    scope = _expected_scope(api)
    for who in PEOPLE:
        response = api.client(who).get("/api/v1/applications", params={"limit": 200})
        assert response.status_code == 200, (who, response.text)
        listed = {int(item["id"]) for item in response.json()["items"]}
        assert listed == scope[who], who


def test_in_scope_pages_show_the_application_and_others_reveal_nothing(built: Built) -> None:
    api = built.api
    scope = _expected_scope(api)
    foreign = min(set(built.documents) - scope["bina"])
    missing = max(built.documents) + 1
    pages = [
        api.client("bina").get(f"/applications/{app_id}", headers={"Accept": "text/html"})
        for app_id in (foreign, missing)
    ]
    # Someone else's application and one that does not exist answer the same page.
    assert [p.status_code for p in pages] == [404, 404]
    strip = re.compile(r"\d+")
    assert strip.sub("", pages[0].text) == strip.sub("", pages[1].text)


def test_every_role_reads_exactly_its_organisations_and_404_elsewhere(built: Built) -> None:
    api = built.api
    every = {api.world.soft_org, api.world.bank_org}
    # Applicants their own; the reviewers of applications none by id; oversight all.
    expected = {
        "ali": {api.world.soft_org},
        "bina": {api.world.bank_org},
        "noc": set(),
        "ptcl-noc": set(),
        "pasha": set(),
        "reg1": every,
        "auditor": every,
        "admin": every,
    }
    wrong = []
    for who, mine in expected.items():
        client = api.client(who)
        for org_id in range(1, max(every) + BEYOND + 1):
            status = client.get(f"/api/v1/organisations/{org_id}").status_code
            if status != (200 if org_id in mine else 404):
                wrong.append(f"{who} GET /api/v1/organisations/{org_id}: {status}")
        listed = {int(o["id"]) for o in client.get("/api/v1/organisations").json()}
        if listed != mine:
            wrong.append(f"{who} lists organisations {sorted(listed)}")
    assert wrong == []
