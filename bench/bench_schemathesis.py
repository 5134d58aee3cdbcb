"""Schemathesis, the full run: every operation of /api/v1/openapi.json as every caller.

The same run as tests/api/test_schemathesis.py (tests/api/fuzzing.py: coverage cases, then valid
and invalid generated input, all of schemathesis's default checks, derandomized), with many
more generated examples per operation and mode. Over the in-process app on SQLite. Prints, per
caller, the requests sent, the answers by status class and every distinct failure; the target
is no failure and no 5xx. `python -m bench.bench_schemathesis [EXAMPLES]` (default 100).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.api.fuzzing import Outcome, fuzz, fuzz_world, load_schema

from bench.report import write_section
from vpnreg.web.policy import ALL_CALLERS

EXAMPLES = 100


def _classes(outcome: Outcome) -> str:
    counts = {f"{c}xx": 0 for c in (2, 3, 4, 5)}
    for status, n in outcome.statuses.items():
        counts[f"{status // 100}xx"] += n
    return " | ".join(f"{n:,}" for n in counts.values())


def main(examples: int | None = None) -> None:
    examples = examples or (int(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES)
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        world = fuzz_world(f"sqlite:///{tmp}/registry.db", Path(tmp))
        try:
            operations = sum(1 for _ in load_schema(world, "public").get_all_operations())
            for caller in ALL_CALLERS:
                outcome = fuzz(world, load_schema(world, caller), caller, examples=examples)
                outcomes.append(outcome)
                print(
                    f"{caller}: {outcome.requests:,} requests in {outcome.seconds:.0f} s, "
                    f"{len(outcome.failures)} failures",
                    flush=True,
                )
        finally:
            world.api.app.state.database.dispose()
            world.api.app.state.feed.close()
    total = time.perf_counter() - started
    requests = sum(o.requests for o in outcomes)
    failures = [f for o in outcomes for f in o.failures]
    server_errors = sum(n for o in outcomes for s, n in o.statuses.items() if s >= 500)
    rows = "\n".join(
        f"| {o.caller} | {o.requests:,} | {_classes(o)} | {len(o.failures)} | {o.seconds:.0f} |"
        for o in outcomes
    )
    verdict = "met" if not failures and not server_errors else "NOT met"
    listed = "\n".join(f"- {f.splitlines()[0]}" for f in failures[:20]) or "none"
    body = f"""
{operations} operations of `/api/v1/openapi.json`, each as {len(ALL_CALLERS)} callers (the public,
a user-bound API token of each kind of person, a gateway's token) over the in-process app on
SQLite: schemathesis's coverage cases, then {examples} generated valid and {examples} invalid
inputs per operation (derandomized), every answer through all of schemathesis's default checks
(tests/api/fuzzing.py; `make test` runs the same with 5). {requests:,} requests in {total:.0f} s.

| caller | requests | 2xx | 3xx | 4xx | 5xx | failures | seconds |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

Failures found: {listed}

Target: no failure of any check and no 5xx, as every caller: **{verdict}**.
"""
    print(body)
    write_section("schemathesis", "Schemathesis over the API (all callers)", body)


if __name__ == "__main__":
    main()
