"""The registry's services: one verb each, keyword-only arguments, one transaction per call.

Every service takes the SQLAlchemy `session` first and everything else by keyword. A changing
service commits its own transaction (the session's), writes exactly the audit events of its
change in that transaction, and raises only `vpnreg.registry.errors.RegistryError` subclasses on
purpose: NotFound, ValidationFailed, StateConflict, StaleVersion, OverlapConflict, Forbidden.
Services that change an application take `expected_version` (None: act on whatever is current)
and refuse a stale one. `now` always comes from the caller's clock; settings arrive as a
ServiceConfig (ServiceConfig.from_settings).
"""

from __future__ import annotations

from vpnreg.registry.audit_log import verify_audit
from vpnreg.registry.models import (
    ISP,
    Application,
    ApplicationPrefix,
    Organisation,
    PeerAmendment,
    SectorBody,
    User,
)
from vpnreg.registry.services.actors import Actor
from vpnreg.registry.services.applications import (
    PrefixRequest,
    create_application,
    find_application,
    get_application,
)
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.directory import (
    authenticate,
    create_isp,
    create_organisation,
    create_sector_body,
    create_user,
    national_id_hash,
)
from vpnreg.registry.services.legacy_import import ImportProblem, ImportReport, import_legacy
from vpnreg.registry.services.lookup import LookupResult, lookup, registered_entries
from vpnreg.registry.services.peers import amend_peers, approve_amendment
from vpnreg.registry.services.renewal import renew
from vpnreg.registry.services.timeline import TimeChange, advance_time
from vpnreg.registry.services.workflow import (
    appeal,
    approve,
    endorse,
    overturn,
    reject,
    revoke,
    submit,
    uphold,
    verify,
    withdraw,
)

__all__ = [
    "ISP",
    "Actor",
    "Application",
    "ApplicationPrefix",
    "ImportProblem",
    "ImportReport",
    "LookupResult",
    "Organisation",
    "PeerAmendment",
    "PrefixRequest",
    "SectorBody",
    "ServiceConfig",
    "TimeChange",
    "User",
    "advance_time",
    "amend_peers",
    "appeal",
    "approve",
    "approve_amendment",
    "authenticate",
    "create_application",
    "create_isp",
    "create_organisation",
    "create_sector_body",
    "create_user",
    "endorse",
    "find_application",
    "get_application",
    "import_legacy",
    "lookup",
    "national_id_hash",
    "overturn",
    "registered_entries",
    "reject",
    "renew",
    "revoke",
    "submit",
    "uphold",
    "verify",
    "verify_audit",
    "withdraw",
]
