"""Changes that may end a credential, announced to whoever caches authenticated tokens.

A token revoked, a user disabled or given another role: each is an audited change of an
`api_token` or `user` object. The web app keeps the tokens it has checked for a few seconds
(vpnreg.web.token_cache) instead of asking the database on every request of a thousand
long-polling gateways; such a change must empty that cache everywhere:

- in the process that commits it: `AuditChain.write` marks the session, and when the
  transaction commits the process's `generation()` moves (a SQLAlchemy after_commit hook), so a
  cache filled before it is stale at once;
- in every other server process on PostgreSQL: a NOTIFY on `CREDENTIALS_CHANNEL`, queued in the
  same transaction (delivered only if it commits); the feed server's listener hears it and calls
  `changed()`;
- on SQLite (no NOTIFY), another process's cache forgets within its time to live
  (VPNREG_TOKEN_CACHE_S).

The generation is per process: a counter that only grows.
"""

from __future__ import annotations

import threading

from sqlalchemy import event, text
from sqlalchemy.orm import Session

__all__ = [
    "CREDENTIALS_CHANNEL",
    "CREDENTIAL_OBJECTS",
    "changed",
    "generation",
    "mark",
]

CREDENTIALS_CHANNEL = "vpnreg_credentials"
#: Audited object types whose change may end a credential.
CREDENTIAL_OBJECTS = frozenset({"api_token", "user"})
_MARK = "vpnreg_credentials_changed"
_lock = threading.Lock()
_generation = 0


def generation() -> int:
    """This process's credentials generation: it moves whenever a credential may have ended."""
    return _generation


def changed() -> None:
    """A credential may have ended (committed here, or announced by another process)."""
    global _generation
    with _lock:
        _generation += 1


def mark(session: Session) -> None:
    """The session's transaction changes a credential: move the generation when it commits,
    and on PostgreSQL tell the other processes then."""
    session.info[_MARK] = True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CREDENTIALS_CHANNEL}"))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_MARK, False):
        changed()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_MARK, None)
