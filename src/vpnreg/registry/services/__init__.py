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
    ApiToken,
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
    set_user_active,
    set_user_role,
)
from vpnreg.registry.services.feed import (
    FeedPublisher,
    PublishResult,
    current_feed,
    publish,
    reset_feed,
    set_mode,
)
from vpnreg.registry.services.legacy_import import ImportProblem, ImportReport, import_legacy
from vpnreg.registry.services.lookup import LookupResult, lookup, registered_entries
from vpnreg.registry.services.peers import amend_peers, approve_amendment
from vpnreg.registry.services.profile import SIGNUP_ACTOR, sign_up, update_organisation
from vpnreg.registry.services.renewal import renew
from vpnreg.registry.services.timeline import TimeChange, advance_time
from vpnreg.registry.services.tokens import (
    authenticate_token,
    create_token,
    effective_role,
    list_tokens,
    revoke_token,
)
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
    "SIGNUP_ACTOR",
    "Actor",
    "ApiToken",
    "Application",
    "ApplicationPrefix",
    "FeedPublisher",
    "ImportProblem",
    "ImportReport",
    "LookupResult",
    "Organisation",
    "PeerAmendment",
    "PrefixRequest",
    "PublishResult",
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
    "authenticate_token",
    "create_application",
    "create_isp",
    "create_organisation",
    "create_sector_body",
    "create_token",
    "create_user",
    "current_feed",
    "effective_role",
    "endorse",
    "find_application",
    "get_application",
    "import_legacy",
    "list_tokens",
    "lookup",
    "national_id_hash",
    "overturn",
    "publish",
    "registered_entries",
    "reject",
    "renew",
    "reset_feed",
    "revoke",
    "revoke_token",
    "set_mode",
    "set_user_active",
    "set_user_role",
    "sign_up",
    "submit",
    "update_organisation",
    "uphold",
    "verify",
    "verify_audit",
    "withdraw",
]
