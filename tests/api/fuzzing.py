"""Schemathesis over the in-process app, as every kind of caller (the test and the benchmark).

`fuzz_world` builds the API of tests/api/harness.py over a database, gives each person an API
token bound to their user (a gateway its role token), and takes a few applications through
their first steps so that small ids name real objects in different states.

`fuzz` runs, for each operation of /api/v1/openapi.json: schemathesis's coverage cases
(boundary values, missing and malformed parameters, methods the operation does not have: a
fixed list), then `examples` generated cases of valid and as many of invalid input
(Hypothesis, derandomized: the same cases every run). Every response goes through all of
schemathesis's default checks. Nothing is skipped: a case the generator cannot satisfy
(an operation without input has no invalid input) is counted, not hidden.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection

from tests.api.harness import Api, build_api
from vpnreg.registry.services.tokens import create_token
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.web.policy import ALL_CALLERS, GATEWAY, PUBLIC

OPENAPI = "/api/v1/openapi.json"

#: The checks' settings that differ from schemathesis's defaults, and why.
#: - positive_data_acceptance: JSON Schema cannot say that a prefix must not overlap another
#:   application's, nor which version is current: input the schema allows may still be refused
#:   by the registry with 412 (stale If-Match) or 422 (a prefix that is reserved, too broad, ...).
CHECKS_CONFIG: dict[str, Any] = {
    "positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429", "5xx"]
    },
    # A missing If-Match is answered 428 (RFC 6585), as the document says.
    "missing_required_header": {"expected-statuses": ["400", "401", "403", "422", "428"]},
}


@dataclass
class FuzzWorld:
    api: Api
    #: The Authorization header of each caller ("public" sends none).
    headers: dict[str, dict[str, str]]


@dataclass
class Outcome:
    """What one caller's run did: requests sent, answers by status, and each failure found."""

    caller: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    #: One line per distinct failure: the operation, what failed, and a request that shows it.
    failures: list[str] = field(default_factory=list)
    unsatisfiable: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _user_tokens(api: Api) -> dict[str, str]:
    """An API token bound to each person's user (as a machine acting for them would hold)."""
    database = Database(api.url)
    try:
        with database.session() as session:
            return {
                caller: create_token(
                    session,
                    name=f"fuzz-{caller}",
                    user_id=api.user_ids[api.usernames[caller]],
                    actor="cli:admin",
                    now=api.clock.now(),
                )[1]
                for caller in ALL_CALLERS
                if caller not in (PUBLIC, GATEWAY)
            }
    finally:
        database.dispose()


def fuzz_world(url: str, data_dir: Path) -> FuzzWorld:
    """The harness's API over `url`, with a token per caller and applications in a few states."""
    api = build_api(url, data_dir)
    draft = api.create("ali", ["192.0.2.0/28"])["id"]
    submitted = api.create("ali", ["192.0.2.16/28"])["id"]
    api.step("ali", submitted, "submit")
    verified = api.create("ali", ["192.0.2.32/28"])["id"]
    api.step("ali", verified, "submit")
    api.step("isp", verified, "verify")
    assert (draft, submitted, verified) == (1, 2, 3)
    headers: dict[str, dict[str, str]] = {PUBLIC: {}}
    for caller, token in _user_tokens(api).items():
        headers[caller] = {"Authorization": f"Bearer {token}"}
    headers[GATEWAY] = {"Authorization": f"Bearer {api.gateway_token}"}
    return FuzzWorld(api=api, headers=headers)


def load_schema(world: FuzzWorld, caller: str) -> Any:
    """The document as the in-process app serves it, the app to send the cases to, and the
    caller's token (so that schemathesis does not generate the Authorization header as an
    input of its own: an invalid one it generated was replaced by the caller's, and the case
    then counted as invalid input wrongly accepted)."""
    app = world.api.app

    async def without_lifespan(scope: Any, receive: Any, send: Any) -> None:
        # The app's lifespan (the feed's scheduler, the frozen heap) stays off, as with the
        # harness's TestClients; schemathesis would start it for the rest of the process.
        if scope["type"] != "lifespan":
            await app(scope, receive, send)

    settings: dict[str, Any] = {"checks": CHECKS_CONFIG, "auth": {"auto-signup": False}}
    token = world.headers[caller].get("Authorization", "").removeprefix("Bearer ")
    if token:
        settings["auth"]["openapi"] = {"bearer": {"bearer": token}}
    config = schemathesis.Config.from_dict(settings)
    return schemathesis.openapi.from_asgi(OPENAPI, without_lifespan, config=config)


def _operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def _coverage_cases(schema: Any, operation: Any) -> Iterable[Any]:
    generation = schema.config.generation_for(operation=operation, phase="coverage")
    return schema.iter_coverage_cases(
        operation, generation_modes=list(GenerationMode), generation_config=generation
    )


class _Raised:
    """An exception the app let out (the test transport raises it instead of answering 500)."""

    def __init__(self, err: Exception) -> None:
        self.title = f"Server error ({type(err).__name__})"
        self.message = str(err).splitlines()[0][:300]


def fuzz(world: FuzzWorld, schema: Any, caller: str, *, examples: int) -> Outcome:
    """Run the coverage cases and `examples` generated cases of each mode, as `caller`."""
    headers = world.headers[caller]
    outcome = Outcome(caller)
    started = time.monotonic()

    seen: set[tuple[str, str]] = set()

    def found(
        operation: Any, case: schemathesis.Case, failures: Iterable[Failure | _Raised]
    ) -> None:
        for failure in failures:
            key = (operation.label, failure.title)
            if key not in seen:
                seen.add(key)
                request = case.as_curl_command(headers=headers)
                outcome.failures.append(
                    f"{caller}: {operation.label}: {failure.title}: {failure.message}\n  {request}"
                )

    def excluded(case: schemathesis.Case) -> list[Any]:
        # A case made invalid in its headers may owe it to a generated Authorization header,
        # which the caller's own replaces: it then arrives valid, and is rightly accepted.
        meta = case.meta
        if "Authorization" in headers and meta and meta.is_negative_at(ParameterLocation.HEADER):
            return [negative_data_rejection]
        return []

    def send(case: schemathesis.Case) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as err:  # the app raised instead of answering: a server error
            outcome.statuses[500] += 1
            found(case.operation, case, [_Raised(err)])
            return
        outcome.requests += 1
        outcome.statuses[response.status_code] += 1
        try:
            case.validate_response(response, headers=headers, excluded_checks=excluded(case))
        except FailureGroup as group:
            found(case.operation, case, group.exceptions)

    for operation in _operations(schema):
        for case in _coverage_cases(schema, operation):
            send(case)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                send(case)

            try:
                run()
            except Unsatisfiable:
                outcome.unsatisfiable.append(f"{mode.value} {operation.label}")
    outcome.seconds = time.monotonic() - started
    return outcome
