"""The audit hash chain: canonical JSON, record hashes, and detection of each kind of tampering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpnreg.core.audit import (
    GENESIS_HASH,
    JSON,
    AuditRecord,
    ChainProblem,
    canonical_json,
    next_record,
    record_hash,
    verify_chain,
)

T0 = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)


class Colour(StrEnum):
    RED = "red"


# --- canonical JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"b": 1, "a": 2}, b'{"a":2,"b":1}', id="sorted-keys"),
        pytest.param({"z": {"y": 1, "x": [3, 2]}}, b'{"z":{"x":[3,2],"y":1}}', id="nested"),
        pytest.param({"a": [1, 2], "b": None}, b'{"a":[1,2],"b":null}', id="no-whitespace"),
        pytest.param("کراچی", '"کراچی"'.encode(), id="utf8-not-escaped"),
        pytest.param("tab\there", b'"tab\\there"', id="control-escaped"),
        pytest.param([True, False, None], b"[true,false,null]", id="literals"),
        pytest.param((1, "x"), b'[1,"x"]', id="tuple-is-list"),
        pytest.param(2**70, b"1180591620717411303424", id="big-int"),
        pytest.param(
            dt.datetime(2026, 1, 15, 14, 0, tzinfo=ZoneInfo("Asia/Karachi")),
            b'"2026-01-15T09:00:00.000000Z"',
            id="datetime-to-utc-z",
        ),
        pytest.param(
            dt.datetime(2026, 1, 15, 9, 0, 0, 120, tzinfo=dt.UTC),
            b'"2026-01-15T09:00:00.000120Z"',
            id="datetime-microseconds",
        ),
        pytest.param(dt.date(2026, 4, 15), b'"2026-04-15"', id="date"),
        pytest.param(Decimal("1.10"), b'"1.10"', id="decimal-keeps-scale"),
        pytest.param(Colour.RED, b'"red"', id="strenum-value"),
        pytest.param(
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            b'"12345678-1234-5678-1234-567812345678"',
            id="uuid",
        ),
        pytest.param(ipaddress.ip_network("192.0.2.0/24"), b'"192.0.2.0/24"', id="ipv4-net"),
        pytest.param(ipaddress.ip_network("2001:db8::/32"), b'"2001:db8::/32"', id="ipv6-net"),
        pytest.param(ipaddress.ip_address("198.51.100.7"), b'"198.51.100.7"', id="ipv4-addr"),
    ],
)
def test_canonical_json(value: object, expected: bytes) -> None:
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(1.5, TypeError, id="float"),
        pytest.param({"x": float("nan")}, TypeError, id="nested-float"),
        pytest.param({1: "a"}, TypeError, id="int-key"),
        pytest.param({"a", "b"}, TypeError, id="set"),
        pytest.param(b"bytes", TypeError, id="bytes"),
        pytest.param(dt.time(9, 0), TypeError, id="time"),
        pytest.param(object(), TypeError, id="object"),
        pytest.param(dt.datetime(2026, 1, 15, 9, 0), ValueError, id="naive-datetime"),
        pytest.param(Decimal("NaN"), ValueError, id="decimal-nan"),
        pytest.param(Decimal("Infinity"), ValueError, id="decimal-inf"),
        pytest.param("\ud800", UnicodeEncodeError, id="lone-surrogate"),
    ],
)
def test_canonical_json_refuses(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_json(value)


def test_canonical_json_error_names_the_path() -> None:
    with pytest.raises(TypeError, match=r"\$\.after\.rate\[1\]: float"):
        canonical_json({"after": {"rate": [1, 2.5]}})


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=5), json_value, max_size=6))
def test_canonical_json_ignores_insertion_order(value: dict[str, object]) -> None:
    reversed_copy = dict(reversed(list(value.items())))
    assert canonical_json(reversed_copy) == canonical_json(value)


# --- records -------------------------------------------------------------------------------


def make_chain(n: int) -> list[AuditRecord]:
    chain: list[AuditRecord] = []
    for i in range(n):
        chain.append(
            next_record(
                chain[-1] if chain else None,
                time=T0 + dt.timedelta(minutes=i),
                actor=f"user-{i % 3}",
                action=("submit", "verify", "approve")[i % 3],
                object_type="application",
                object_id=f"app-{i // 3}",
                before={"state": "draft", "prefixes": ["192.0.2.0/24"]} if i else None,
                after={"state": "submitted", "n": i},
            )
        )
    return chain


def test_next_record_links_and_numbers() -> None:
    first, second = make_chain(2)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert first.hash != second.hash


def test_record_hash_is_sha256_of_canonical_json_of_all_fields() -> None:
    rec = make_chain(1)[0]
    body = {
        "seq": rec.seq,
        "time": "2026-01-15T09:00:00.000000Z",
        "actor": rec.actor,
        "action": rec.action,
        "object_type": rec.object_type,
        "object_id": rec.object_id,
        "before": rec.before,
        "after": rec.after,
        "prev_hash": GENESIS_HASH,
    }
    assert rec.hash == hashlib.sha256(canonical_json(body)).hexdigest()
    assert len(rec.hash) == 64


def fields(rec: AuditRecord) -> dict[str, object]:
    out = dataclasses.asdict(rec)
    del out["hash"]
    return out


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"seq": 2}, id="seq"),
        pytest.param({"time": T0 + dt.timedelta(microseconds=1)}, id="time"),
        pytest.param({"actor": "user-9"}, id="actor"),
        pytest.param({"action": "revoke"}, id="action"),
        pytest.param({"object_type": "registration"}, id="object_type"),
        pytest.param({"object_id": "app-9"}, id="object_id"),
        pytest.param({"before": {}}, id="before"),
        pytest.param({"after": {"state": "submitted", "n": 1}}, id="after"),
        pytest.param({"prev_hash": "1" * 64}, id="prev_hash"),
    ],
)
def test_every_field_is_covered_by_the_hash(change: dict[str, object]) -> None:
    rec = make_chain(1)[0]
    assert record_hash(**{**fields(rec), **change}) != rec.hash  # type: ignore[arg-type]


def test_the_same_instant_in_another_zone_hashes_the_same() -> None:
    rec = make_chain(1)[0]
    karachi = rec.time.astimezone(ZoneInfo("Asia/Karachi"))
    assert record_hash(**{**fields(rec), "time": karachi}) == rec.hash  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"seq": 0}, ValueError, id="seq-zero"),
        pytest.param({"seq": True}, ValueError, id="seq-bool"),
        pytest.param({"time": dt.datetime(2026, 1, 15)}, ValueError, id="naive-time"),
        pytest.param({"time": dt.date(2026, 1, 15)}, TypeError, id="date-time"),
        pytest.param({"actor": 7}, TypeError, id="actor-int"),
        pytest.param({"after": {"x": 0.5}}, TypeError, id="float-in-after"),
    ],
)
def test_record_hash_refuses_bad_fields(change: dict[str, object], error: type[Exception]) -> None:
    rec = make_chain(1)[0]
    with pytest.raises(error):
        record_hash(**{**fields(rec), **change})  # type: ignore[arg-type]


# --- tampering -----------------------------------------------------------------------------


def rehash(rec: AuditRecord, **changes: object) -> AuditRecord:
    """A forger's edit: change fields and recompute this record's own hash."""
    changed = dataclasses.replace(rec, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(changed, hash=record_hash(**fields(changed)))  # type: ignore[arg-type]


def forged(seq: int, prev_hash: str, actor: str = "mallory") -> AuditRecord:
    return rehash(
        AuditRecord(
            seq=seq,
            time=T0,
            actor=actor,
            action="approve",
            object_type="application",
            object_id="app-x",
            before=None,
            after={"state": "approved"},
            prev_hash=prev_hash,
            hash="",
        )
    )


Tamper = Callable[[list[AuditRecord]], list[AuditRecord]]


def at(i: int, f: Callable[[AuditRecord], AuditRecord]) -> Tamper:
    """Apply f to the record with seq i (index i-1)."""
    return lambda c: [*c[: i - 1], f(c[i - 1]), *c[i:]]


def replace(**changes: object) -> Callable[[AuditRecord], AuditRecord]:
    return lambda r: dataclasses.replace(r, **changes)  # type: ignore[arg-type]


def rewrite_tail_from(i: int) -> Tamper:
    """Someone with write access to the table: edit record i and recompute everything after."""

    def tamper(c: list[AuditRecord]) -> list[AuditRecord]:
        out = c[: i - 1]
        for rec in c[i - 1 :]:
            prev_hash = out[-1].hash if out else GENESIS_HASH
            actor = "mallory" if rec.seq == i else rec.actor
            out.append(rehash(rec, prev_hash=prev_hash, actor=actor))
        return out

    return tamper


TAMPER_CASES = [
    pytest.param(at(3, replace(actor="mallory")), ("modified", 3), id="modified-actor"),
    pytest.param(at(3, replace(after={"state": "approved"})), ("modified", 3), id="modified-after"),
    pytest.param(at(3, replace(hash="f" * 64)), ("modified", 3), id="modified-hash"),
    pytest.param(at(3, replace(prev_hash="f" * 64)), ("modified", 3), id="modified-prev-hash"),
    pytest.param(at(3, replace(seq=7)), ("modified", 3), id="modified-seq"),
    pytest.param(at(1, replace(object_id="app-9")), ("modified", 1), id="modified-first"),
    pytest.param(at(5, replace(action="revoke")), ("modified", 5), id="modified-last"),
    pytest.param(
        at(3, replace(time=dt.datetime(2026, 1, 15, 9, 2))), ("malformed", 3), id="naive-time"
    ),
    pytest.param(at(3, lambda r: rehash(r, actor="mallory")), ("bad_prev_hash", 4), id="rehashed"),
    pytest.param(at(3, lambda r: rehash(r, seq=4)), ("bad_seq", 3), id="renumbered-rehashed"),
    pytest.param(lambda c: [*c[:2], *c[3:]], ("deleted", 3), id="deleted-middle"),
    pytest.param(lambda c: c[1:], ("deleted", 1), id="deleted-first"),
    pytest.param(lambda c: [*c[:2], *c[4:]], ("deleted", 3), id="deleted-two"),
    pytest.param(lambda c: [c[0], *c[2:], c[1]], ("deleted", 2), id="moved-to-end"),
    pytest.param(
        lambda c: [*c[:2], forged(3, c[1].hash), *c[2:]], ("inserted", 3), id="inserted-linked"
    ),
    pytest.param(
        lambda c: [*c[:2], forged(3, "a" * 64), *c[2:]], ("inserted", 3), id="inserted-unlinked"
    ),
    pytest.param(
        lambda c: [*c[:2], forged(99, c[1].hash), *c[2:]], ("inserted", 3), id="inserted-seq-99"
    ),
    pytest.param(
        lambda c: [forged(1, GENESIS_HASH), *c], ("inserted", 1), id="inserted-before-first"
    ),
    pytest.param(lambda c: [*c, forged(6, "a" * 64)], ("bad_prev_hash", 6), id="appended-unlinked"),
    pytest.param(lambda c: [*c[:3], c[2], *c[3:]], ("duplicated", 3), id="duplicated"),
    pytest.param(lambda c: [*c[:2], c[3], c[2], *c[4:]], ("reordered", 3), id="swapped-3-4"),
    pytest.param(lambda c: [*c[:3], c[4], c[3]], ("reordered", 4), id="swapped-last-pair"),
    pytest.param(lambda c: [c[1], c[0], *c[2:]], ("reordered", 1), id="swapped-first-pair"),
    pytest.param(lambda c: [*c[:3], c[1], *c[3:]], ("reordered", 4), id="old-event-replayed"),
]


@pytest.mark.parametrize(("tamper", "found"), TAMPER_CASES)
def test_tampering_is_found_and_named(tamper: Tamper, found: tuple[str, int]) -> None:
    chain = make_chain(5)
    assert verify_chain(chain) is None
    problem = verify_chain(tamper(chain))
    assert problem is not None
    assert (problem.kind, problem.seq) == found
    assert "\n" not in problem.message
    assert f"{found[1]}" in problem.message


def test_messages_name_the_event() -> None:
    chain = make_chain(5)
    problem = verify_chain([*chain[:2], *chain[4:]])
    assert problem == ChainProblem(
        3,
        "deleted",
        "events 3..4 are missing: the next stored event is 5 (verify application app-1 by user-1)",
    )


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda c: c[:-1], id="last-event-deleted"),
        pytest.param(lambda c: [*c[:-1], rehash(c[-1], actor="mallory")], id="last-rehashed"),
        pytest.param(rewrite_tail_from(2), id="tail-rewritten"),
    ],
)
def test_what_the_chain_alone_cannot_see(tamper: Tamper) -> None:
    # The honest limits (ADR 0003): these need the head hash anchored outside the database.
    chain = make_chain(5)
    tampered = tamper(chain)
    assert tampered != chain
    assert verify_chain(tampered) is None
    assert tampered[-1].hash != chain[-1].hash  # ... which a published head hash would reveal


def test_empty_chain_holds() -> None:
    assert verify_chain([]) is None


def test_verify_chain_streams() -> None:
    consumed: list[int] = []

    def source() -> Iterator[AuditRecord]:
        for rec in make_chain(50):
            consumed.append(rec.seq)
            yield rec if rec.seq != 5 else dataclasses.replace(rec, actor="mallory")

    problem = verify_chain(source())
    assert problem is not None
    assert problem.seq == 5
    # It stopped at the problem, having read only one record beyond it.
    assert consumed == list(range(1, 7))


# --- hypothesis: any single mutation is found at or before the mutated record --------------
# (No deadline: hashing speed varies with machine load, and these assert outcomes, not time.)

small_json: st.SearchStrategy[JSON] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@st.composite
def chains(draw: st.DrawFn, min_size: int = 1) -> list[AuditRecord]:
    n = draw(st.integers(min_value=min_size, max_value=8))
    chain: list[AuditRecord] = []
    time = T0
    for _ in range(n):
        time += dt.timedelta(microseconds=draw(st.integers(0, 10**9)))
        chain.append(
            next_record(
                chain[-1] if chain else None,
                time=time,
                actor=draw(st.text(max_size=6)),
                action=draw(st.sampled_from(["submit", "verify", "approve", "revoke"])),
                object_type=draw(st.sampled_from(["application", "registration"])),
                object_id=draw(st.text(max_size=6)),
                before=draw(small_json),
                after=draw(small_json),
            )
        )
    return chain


def flip(hex_text: str, index: int, delta: int) -> str:
    digit = (int(hex_text[index], 16) + delta) % 16
    return hex_text[:index] + format(digit, "x") + hex_text[index + 1 :]


@st.composite
def field_change(draw: st.DrawFn, rec: AuditRecord) -> AuditRecord:
    name = draw(
        st.sampled_from(
            [
                "seq",
                "time",
                "actor",
                "action",
                "object_type",
                "object_id",
                "before",
                "after",
                "prev_hash",
                "hash",
            ]
        )
    )
    value: object
    if name == "seq":
        value = rec.seq + draw(st.integers(min_value=1, max_value=5)) * draw(
            st.sampled_from([-1, 1])
        )
    elif name == "time":
        value = rec.time + dt.timedelta(microseconds=draw(st.integers(1, 10**9)))
    elif name in {"before", "after"}:
        value = {"tampered": getattr(rec, name)}
    elif name in {"prev_hash", "hash"}:
        value = flip(getattr(rec, name), draw(st.integers(0, 63)), draw(st.integers(1, 15)))
    else:
        value = getattr(rec, name) + draw(st.text(min_size=1, max_size=3))
    return dataclasses.replace(rec, **{name: value})  # type: ignore[arg-type]


@settings(deadline=None)
@given(chains())
def test_untouched_random_chains_hold(chain: list[AuditRecord]) -> None:
    assert verify_chain(chain) is None


@settings(deadline=None)
@given(st.data(), chains())
def test_any_field_change_is_found_at_that_record(
    data: st.DataObject, chain: list[AuditRecord]
) -> None:
    i = data.draw(st.integers(0, len(chain) - 1))
    tampered = [*chain[:i], data.draw(field_change(chain[i])), *chain[i + 1 :]]
    problem = verify_chain(tampered)
    assert problem is not None
    assert problem.seq == i + 1
    assert problem.kind in {"modified", "malformed"}


@settings(deadline=None)
@given(st.data(), chains(min_size=2))
def test_any_deletion_but_the_last_is_found_at_or_before_it(
    data: st.DataObject, chain: list[AuditRecord]
) -> None:
    i = data.draw(st.integers(0, len(chain) - 2))
    problem = verify_chain([*chain[:i], *chain[i + 1 :]])
    assert problem is not None
    assert problem.seq <= i + 1


@settings(deadline=None)
@given(st.data(), chains())
def test_any_insertion_is_found_at_or_before_it(
    data: st.DataObject, chain: list[AuditRecord]
) -> None:
    i = data.draw(st.integers(0, len(chain) - 1))
    link_right = data.draw(st.booleans())
    prev_hash = (chain[i - 1].hash if i else GENESIS_HASH) if link_right else "b" * 64
    fake = forged(data.draw(st.integers(1, len(chain) + 2)), prev_hash, data.draw(st.text()))
    problem = verify_chain([*chain[:i], fake, *chain[i:]])
    assert problem is not None
    assert problem.seq <= i + 1


@settings(deadline=None)
@given(st.data(), chains(min_size=2))
def test_any_adjacent_swap_is_found_at_or_before_it(
    data: st.DataObject, chain: list[AuditRecord]
) -> None:
    i = data.draw(st.integers(0, len(chain) - 2))
    problem = verify_chain([*chain[:i], chain[i + 1], chain[i], *chain[i + 2 :]])
    assert problem is not None
    assert problem.seq <= i + 1
    assert problem.kind == "reordered"
