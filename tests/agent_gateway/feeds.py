"""Signed feed material made in tests: a key pair, snapshot documents, atomic file replacement."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vpnreg.core.feed import (
    AllowlistEntry,
    EnforcementMode,
    FeedState,
    Mode,
    dump_document,
    sign_snapshot,
    verify_document,
)
from vpnreg.core.feed.document import VerifiedSnapshot


def entry(prefix: str, registration_id: int, *peers: str) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=ipaddress.ip_network(prefix),
        peers=tuple(ipaddress.ip_network(p) for p in peers),
        registration_id=registration_id,
        valid_until=dt.datetime(2027, 1, 1, 19, tzinfo=dt.UTC),
    )


class Signer:
    """A feed key pair whose public half is written where `--trust` can read it."""

    def __init__(self, directory: Path) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public_path = directory / "feed.pub"
        self.public_path.write_bytes(
            self.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        self.session = secrets.token_hex(16)

    def snapshot(
        self,
        entries: Iterable[AllowlistEntry],
        *,
        serial: int,
        created: dt.datetime,
        mode: EnforcementMode | None = None,
        lifetime: dt.timedelta = dt.timedelta(days=30),
    ) -> bytes:
        return dump_document(
            sign_snapshot(
                session_id=self.session,
                serial=serial,
                entries=list(entries),
                mode=mode or EnforcementMode(Mode.ENFORCE),
                created=created,
                expires=created + lifetime,
                private_key=self.private,
            )
        )

    def state(self, raw: bytes, now: dt.datetime) -> FeedState:
        from vpnreg.core.feed import key_id

        doc = verify_document(
            raw, trusted={key_id(self.private.public_key()): self.private.public_key()}, now=now
        )
        assert isinstance(doc, VerifiedSnapshot)
        return doc.state()


def replace_file(path: Path, data: bytes) -> None:
    """Write beside and rename over: readers see the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
