"""Which database answers a request's reads: the one place that sends the public reads to the
read replica (`VPNREG_DATABASE_READ_URL`, ADR 0017).

Routes whose answer is the same for everyone and that only read (the lookup's SQL, the
statistics, the status page, the transparency pages) take `ReadDb` instead of `DbSession`.
`ReadDb` is the replica's session when all of these hold, else the request's own session on the
primary (`DbSession`, the very same one):
- the app has a replica (`app.state.read_database`);
- the method changes nothing (GET, HEAD, OPTIONS);
- the caller is the public: nobody signed in and no API token. Whoever signs in reads what
  they just wrote, so a signed-in page, a bearer token and every write stay on the primary.
  The open reads that never look the caller up (`enforce_policy`: the JSON API and HTMX
  parts without an Authorization header) count as the public's, as their answer already does.

Sessions, CSRF, sign-in, the feed and the publisher never see `ReadDb`: they use `DbSession`
or their own units of work on the primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from vpnreg.registry.services.unit_of_work import Database
from vpnreg.registry.services.unit_of_work import DbSession as Session
from vpnreg.web.auth import DbSession, Principal, enforce_policy
from vpnreg.web.policy import SAFE_METHODS

__all__ = ["ReadDb", "reads_from_replica"]


def reads_from_replica(request: Request) -> bool:
    """Whether this request's `ReadDb` is the replica's (see the module's docstring)."""
    if getattr(request.app.state, "read_database", None) is None:
        return False
    if request.method.upper() not in SAFE_METHODS:
        return False
    principal = getattr(request.state, "principal", None)
    # None: enforce_policy let an open, anonymous read through without looking the caller up
    return principal is None or (isinstance(principal, Principal) and principal.via == "public")


async def get_read_db(
    request: Request, db: DbSession, _checked: Annotated[None, Depends(enforce_policy)]
) -> AsyncIterator[Session]:
    # Depending on enforce_policy (cached: it already ran for the app) makes sure the caller
    # was resolved, where it is, before the choice.
    if not reads_from_replica(request):
        yield db
        return
    replica: Database = request.app.state.read_database
    session = replica.open_request()
    try:
        yield session
    finally:
        await replica.close_request(session)


#: A session for a public read: the replica's when there is one and the caller is the public.
ReadDb = Annotated[Session, Depends(get_read_db)]
