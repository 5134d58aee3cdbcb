"""The registry's services: one verb each, keyword-only arguments, one transaction per call.

Every step on an application (submit ... overturn, renew) goes through `take_step`. What a
service hands back to a caller is a read model (vpnreg.registry.views), never an ORM object, and
this package exports no ORM class: the web layer could not reach the models through it.

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
from vpnreg.registry.services.actions import (
    AMEND_PEERS,
    AMEND_PROTOCOLS,
    UPLOAD_DOCUMENT,
    available_actions,
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
    PublishResult,
    current_feed,
    publish,
    reset_feed,
    set_mode,
)
from vpnreg.registry.services.feed_publisher import FeedPublisher
from vpnreg.registry.services.intake import DocumentUpload, apply_for_registration
from vpnreg.registry.services.legacy_import import ImportProblem, ImportReport, import_legacy
from vpnreg.registry.services.lookup import LookupResult, lookup, registered_entries
from vpnreg.registry.services.peers import amend_peers, approve_amendment
from vpnreg.registry.services.profile import SIGNUP_ACTOR, sign_up, update_organisation
from vpnreg.registry.services.protocol_amendments import (
    amend_protocols,
    decide_protocol_amendment,
    pending_protocol_amendment,
)
from vpnreg.registry.services.radius_clients import set_radius_client
from vpnreg.registry.services.timeline import TimeChange, advance_time
from vpnreg.registry.services.tokens import (
    authenticate_token,
    create_token,
    effective_role,
    list_tokens,
    revoke_token,
)
from vpnreg.registry.services.workflow import (
    RENEW,
    STEPS,
    StepRequest,
    arguments_for,
    take_step,
)

__all__ = [
    "AMEND_PEERS",
    "AMEND_PROTOCOLS",
    "RENEW",
    "SIGNUP_ACTOR",
    "STEPS",
    "UPLOAD_DOCUMENT",
    "Actor",
    "DocumentUpload",
    "FeedPublisher",
    "ImportProblem",
    "ImportReport",
    "LookupResult",
    "PrefixRequest",
    "PublishResult",
    "ServiceConfig",
    "StepRequest",
    "TimeChange",
    "advance_time",
    "amend_peers",
    "amend_protocols",
    "apply_for_registration",
    "approve_amendment",
    "arguments_for",
    "authenticate",
    "authenticate_token",
    "available_actions",
    "create_application",
    "create_isp",
    "create_organisation",
    "create_sector_body",
    "create_token",
    "create_user",
    "current_feed",
    "decide_protocol_amendment",
    "effective_role",
    "find_application",
    "get_application",
    "import_legacy",
    "list_tokens",
    "lookup",
    "national_id_hash",
    "pending_protocol_amendment",
    "publish",
    "registered_entries",
    "reset_feed",
    "revoke_token",
    "set_mode",
    "set_radius_client",
    "set_user_active",
    "set_user_role",
    "sign_up",
    "take_step",
    "update_organisation",
    "verify_audit",
]
