"""Audit transparency on both backends (ADR 0008): a mixed version 1/2 chain, signed checkpoints,
the public export, and a rewrite of history that only the outside check can see."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import act, approved, ready_for_decision
from tests.registry.tampering import drop_triggers, rewrite_from
from vpnreg.clock import FrozenClock
from vpnreg.core.audit import HASH_V1, HASH_V2, next_record
from vpnreg.core.audit_checkpoint import CheckpointError, parse_checkpoint, sign_checkpoint
from vpnreg.core.audit_export import BEFORE_TRANSPARENCY, check_against_checkpoints
from vpnreg.core.feed import key_id
from vpnreg.registry import services
from vpnreg.registry.audit_log import iter_records, verify_audit
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.errors import StateConflict
from vpnreg.registry.models import AuditCheckpoint, AuditHead, AuditLogRow
from vpnreg.registry.services import transparency

KEY = Ed25519PrivateKey.generate()
TRUSTED: dict[str, Ed25519PublicKey] = {key_id(KEY.public_key()): KEY.public_key()}
NATIONAL_ID = "35202-1234567-8"
#: Fields of hashes and salts: hex digits, where any short number may occur by chance.
_HEX_KEYS = {"salt", "digest", "hash", "prev_hash"}


def _append_v1(session: Session, now: dt.datetime, **fields: Any) -> None:
    """An event as the code before migration 0009 wrote it (hash version 1, no salt)."""
    records = list(iter_records(session))
    record = next_record(records[-1] if records else None, time=now, **fields)
    session.execute(
        insert(AuditLogRow).values(
            seq=record.seq,
            time=record.time,
            actor=record.actor,
            action=record.action,
            object_type=record.object_type,
            object_id=record.object_id,
            before=record.before,
            after=record.after,
            prev_hash=record.prev_hash,
            hash=record.hash,
            hash_version=HASH_V1,
        )
    )
    session.execute(update(AuditHead).values(seq=record.seq, hash=record.hash))
    session.commit()


@pytest.fixture
def history(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> int:
    """Two version 1 events from before transparency (one personal, one not), then the world
    and a registration through the services (version 2). Returns the event count."""
    session.execute(update(AuditHead).values(seq=0, hash=""))
    # The world's own events came first in this database; start the log over for a mixed chain.
    drop_triggers(session, "audit_log")
    session.execute(text("DELETE FROM audit_log"))
    _append_v1(
        session,
        clock.now(),
        actor="reg1",
        action="create_user",
        object_type="user",
        object_id="99",
        before=None,
        after={"id": 99, "username": "old-reg", "role": "regulator"},
    )
    _append_v1(
        session,
        clock.now(),
        actor="system",
        action="activate",
        object_type="application",
        object_id="98",
        before={"state": "approved", "version": 4},
        after={"state": "active", "version": 5},
    )
    services.create_organisation(
        session,
        name="Rabia Tarbela",
        category="freelancer",
        actor="cli:admin",
        now=clock.now(),
        config=config,
        national_id=NATIONAL_ID,
    )
    app = ready_for_decision(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    act(
        "reject",
        session,
        application_id=app.id,
        actor=world.regulator,
        now=clock.now(),
        config=config,
        reason_code="documents",
        reason="no contract from Lahore Code Works",
    )
    approved(session, world, config, clock.now(), [("198.51.100.0/24", [])])
    count = len(list(iter_records(session)))
    assert count > 10
    return count


def _export(session: Session) -> list[tuple[int, object]]:
    return [
        (n, json.loads(line)) for n, line in enumerate(transparency.export_lines(session), start=1)
    ]


def test_a_mixed_chain_verifies_and_new_events_are_version_2(
    session: Session, history: int
) -> None:
    versions = [r.version for r in iter_records(session)]
    assert versions[:2] == [HASH_V1, HASH_V1]
    assert set(versions[2:]) == {HASH_V2}
    assert verify_audit(session) is None


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        pytest.param("UPDATE audit_log SET salt = :salt WHERE seq = :k", "modified", id="salt"),
        pytest.param(
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = :k", "modified", id="actor"
        ),
        pytest.param("UPDATE audit_log SET after = NULL WHERE seq = :k", "modified", id="after"),
        pytest.param(
            "UPDATE audit_log SET hash_version = 1 WHERE seq = :k", "malformed", id="version"
        ),
        pytest.param("UPDATE audit_log SET salt = NULL WHERE seq = :k", "malformed", id="no-salt"),
    ],
)
def test_tampering_with_a_version_2_event_or_its_new_columns_is_found(
    session: Session, history: int, change: str, kind: str
) -> None:
    k = history - 2
    drop_triggers(session, "audit_log")
    session.execute(text(change), {"k": k, "salt": bytes(16)})
    problem = verify_audit(session)
    assert problem is not None
    assert (problem.seq, problem.kind) == (k, kind)


def test_the_export_holds_no_personal_value_in_clear(
    session: Session, history: int, world: World
) -> None:
    lines = _export(session)
    assert len(lines) == history
    assert lines[0][1] == {
        "seq": 1,
        "v": 1,
        "withheld": BEFORE_TRANSPARENCY,
        "prev_hash": "0" * 64,
        "hash": lines[1][1]["prev_hash"],  # type: ignore[index]
    }
    assert lines[1][1]["after"] == {"state": "active", "version": 5}  # type: ignore[index]
    shown: list[str] = []

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                shown.append(k)
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key not in _HEX_KEYS:
            shown.append(str(value))

    for _, event in lines:
        walk(event)
    text_shown = "\n".join(shown)
    personal = [
        "Rabia Tarbela",
        NATIONAL_ID,
        NATIONAL_ID[-4:],
        "Lahore Code Works",
        "0012345",
        "no contract",
        "192.0.2.0/24",
        "old-reg",
        *(
            user.username
            for user in (world.applicant, world.isp_user, world.sector_user, world.regulator)
        ),
    ]
    for value in personal:
        assert value not in shown, value
        if len(value) >= 6:  # short names ("ali") are inside harmless words ("national")
            assert value not in text_shown, value
    # What is public is there: actions, states, codes, the system's actor.
    for public in ("approve", "reject", "documents", "active", "cli:admin", "system"):
        assert public in shown, public
    assert "sector_endorsed" in text_shown


def test_checkpoints_are_signed_chained_and_made_only_when_the_chain_moved(
    session: Session, history: int, clock: FrozenClock, world: World
) -> None:
    first = transparency.make_checkpoint(session, now=clock.now(), private_key=KEY)
    assert (first.number, first.count) == (1, history)
    assert first.head == list(iter_records(session))[-1].hash
    clock.advance(dt.timedelta(minutes=10))
    assert transparency.checkpoint_if_moved(session, now=clock.now(), private_key=KEY) is None
    with pytest.raises(StateConflict, match="checkpoint times must increase"):
        transparency.make_checkpoint(session, now=first.time, private_key=KEY)
    services.set_user_active(
        session, user_id=world.isp_user.id, active=False, actor="cli:admin", now=clock.now()
    )
    second = transparency.checkpoint_if_moved(session, now=clock.now(), private_key=KEY)
    assert second is not None
    assert (second.number, second.count, second.previous) == (2, history + 1, first.digest)
    assert transparency.list_checkpoints(session, limit=1) == [second]
    assert transparency.list_checkpoints(session, before=2) == [first]
    assert transparency.latest_checkpoint(session) == second
    check_against_checkpoints(_export(session), [first, second], TRUSTED)


def test_a_history_rewritten_after_a_checkpoint_is_caught_from_outside(
    session: Session, history: int, clock: FrozenClock
) -> None:
    signed = transparency.make_checkpoint(session, now=clock.now(), private_key=KEY)
    saved = json.loads(json.dumps(signed.to_json()))  # what an auditor kept
    check_against_checkpoints(_export(session), [parse_checkpoint(saved)], TRUSTED)
    rejection = next(r for r in iter_records(session) if r.action == "reject")
    assert isinstance(rejection.after, dict)
    drop_triggers(session, "audit_log")
    rewrite_from(session, rejection.seq, {**rejection.after, "reason_code": "withdrawn"})
    # Inside, the rewrite is invisible: every hash and link holds (ADR 0003's known limit).
    assert verify_audit(session) is None
    rewritten = _export(session)
    with pytest.raises(CheckpointError, match=r"checkpoint 1: event .* history was rewritten"):
        check_against_checkpoints(rewritten, [parse_checkpoint(saved)], TRUSTED)
    # Re-signing checkpoint 1 over the new head makes the registry's own list consistent, but
    # the copy the auditor kept shows that checkpoint 1 was rewritten.
    drop_triggers(session, "audit_checkpoints")
    forged = sign_checkpoint(
        number=1,
        count=signed.count,
        head=list(iter_records(session))[signed.count - 1].hash,
        time=signed.time,
        previous=signed.previous,
        private_key=KEY,
    )
    session.execute(
        update(AuditCheckpoint)
        .where(AuditCheckpoint.number == 1)
        .values(head=forged.head, signature=forged.signature)
    )
    served = transparency.list_checkpoints(session)
    check_against_checkpoints(rewritten, served, TRUSTED)
    with pytest.raises(CheckpointError, match="checkpoint 1 was rewritten"):
        check_against_checkpoints(rewritten, [*served, parse_checkpoint(saved)], TRUSTED)


def test_checkpoints_are_append_only(session: Session, history: int, clock: FrozenClock) -> None:
    transparency.make_checkpoint(session, now=clock.now(), private_key=KEY)
    with pytest.raises(Exception, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE audit_checkpoints SET count = 0"))
    with pytest.raises(Exception, match="append-only"), session.begin_nested():
        session.execute(text("DELETE FROM audit_checkpoints"))
    assert session.scalar(select(AuditCheckpoint.count)) == history


def test_migration_0009_keeps_old_events_at_version_1_and_appends_version_2(
    fresh_url: str, clock: FrozenClock
) -> None:
    upgrade(fresh_url, "0007")
    engine = make_engine(fresh_url)
    try:
        previous = None
        with engine.begin() as conn:
            # Two events as the code of revision 0007 wrote them (no hash_version, no salt).
            for i in range(2):
                previous = next_record(
                    previous,
                    time=clock.now(),
                    actor="reg1",
                    action="create_user",
                    object_type="user",
                    object_id=str(i + 1),
                    before=None,
                    after={"id": i + 1, "username": f"user{i}"},
                )
                conn.execute(
                    text(
                        "INSERT INTO audit_log (seq, time, actor, action, object_type, object_id, "
                        "after, prev_hash, hash) VALUES (:seq, :time, :actor, :action, "
                        ":object_type, :object_id, :after, :prev_hash, :hash)"
                    ),
                    {
                        "seq": previous.seq,
                        "time": previous.time,
                        "actor": previous.actor,
                        "action": previous.action,
                        "object_type": previous.object_type,
                        "object_id": previous.object_id,
                        "after": json.dumps(previous.after),
                        "prev_hash": previous.prev_hash,
                        "hash": previous.hash,
                    },
                )
            assert previous is not None
            conn.execute(
                text("UPDATE audit_head SET seq = 2, hash = :h WHERE id = 1"), {"h": previous.hash}
            )
        upgrade(fresh_url)
        with make_session_factory(engine)() as session:
            assert verify_audit(session) is None
            services.create_isp(session, name="Nayatel", actor="cli:admin", now=clock.now())
            assert [r.version for r in iter_records(session)] == [HASH_V1, HASH_V1, HASH_V2]
            assert verify_audit(session) is None
            lines = _export(session)
            assert [e.get("withheld") for _, e in lines] == [  # type: ignore[union-attr]
                BEFORE_TRANSPARENCY,
                BEFORE_TRANSPARENCY,
                None,
            ]
            made = transparency.make_checkpoint(session, now=clock.now(), private_key=KEY)
            outcome = check_against_checkpoints(lines, [made], TRUSTED)
            assert (outcome.export.events, outcome.export.withheld) == (3, 2)
    finally:
        engine.dispose()
