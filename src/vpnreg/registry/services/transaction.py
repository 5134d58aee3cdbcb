"""The unit of work of one service call: commit on success, roll back on any error.

Core errors about the review flow are turned into the registry's domain errors here, so every
service raises only RegistryError subclasses on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from vpnreg.core.review import PermissionDenied, TransitionError
from vpnreg.registry.errors import Forbidden, StaleVersion, StateConflict


@contextmanager
def service_transaction(session: Session) -> Iterator[None]:
    """Run the body and commit the session's transaction; roll it back if anything is raised.

    With a session joined to an outer transaction (join_transaction_mode="create_savepoint",
    as in the tests), commit and rollback apply to a savepoint only.
    """
    try:
        yield
        session.commit()
    except PermissionDenied as exc:
        session.rollback()
        raise Forbidden(exc.message) from exc
    except TransitionError as exc:
        session.rollback()
        raise StateConflict(exc.message) from exc
    except StaleDataError as exc:
        # Another transaction changed the row between our read and our write.
        session.rollback()
        raise StaleVersion(-1, -1) from exc
    except BaseException:
        session.rollback()
        raise
