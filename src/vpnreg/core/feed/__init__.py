"""The allowlist feed: entries, their canonical encoding and set hash, signed documents, history.

Pure: callers pass the time, the keys and the data. Layout and rationale: docs/adr/0001 and
0006 (entry version 2); the compact snapshot: docs/adr/0011.
"""

from __future__ import annotations

from vpnreg.core.feed.compact import (
    COMPACT_MEDIA_TYPE,
    compact_of,
    is_compact,
    sign_compact_snapshot,
    verify_compact,
)
from vpnreg.core.feed.document import (
    VerifiedDelta,
    VerifiedSnapshot,
    dump_document,
    format_time,
    load_json,
    sign_delta,
    sign_snapshot,
    sign_snapshot_bytes,
    verify_document,
)
from vpnreg.core.feed.entry import (
    ANY_PORTS,
    ENTRY_VERSION,
    NETWORK_SIZE,
    RECORD_SIZE,
    AllowlistEntry,
    Network,
    decode_network,
    encode_network,
)
from vpnreg.core.feed.entry_v1 import v1_valid_until
from vpnreg.core.feed.errors import (
    BadSignature,
    DocumentTooLarge,
    Expired,
    FeedError,
    HashMismatch,
    MalformedDocument,
    NotApplicable,
    Rollback,
    SessionMismatch,
    TruncatedDocument,
    UnknownKey,
    UnsignedDocument,
    UnsupportedVersion,
    VersionMismatch,
)
from vpnreg.core.feed.mode import EnforcementMode, Mode
from vpnreg.core.feed.sethash import RECORD_DTYPE, SUPPORTED_VERSIONS, EntryTable, set_hash
from vpnreg.core.feed.signing import (
    DocumentType,
    Header,
    changes_digest,
    key_id,
    signing_bytes,
)
from vpnreg.core.feed.state import (
    FeedState,
    Freshness,
    HeldState,
    apply_delta,
    check_not_older,
)
from vpnreg.core.feed.versions import FeedHistory, HistoryDelta, HistorySnapshot, merge_deltas
from vpnreg.core.protocols import VpnProtocol

__all__ = [
    "ANY_PORTS",
    "COMPACT_MEDIA_TYPE",
    "ENTRY_VERSION",
    "NETWORK_SIZE",
    "RECORD_DTYPE",
    "RECORD_SIZE",
    "SUPPORTED_VERSIONS",
    "AllowlistEntry",
    "BadSignature",
    "DocumentTooLarge",
    "DocumentType",
    "EnforcementMode",
    "EntryTable",
    "Expired",
    "FeedError",
    "FeedHistory",
    "FeedState",
    "Freshness",
    "HashMismatch",
    "Header",
    "HeldState",
    "HistoryDelta",
    "HistorySnapshot",
    "MalformedDocument",
    "Mode",
    "Network",
    "NotApplicable",
    "Rollback",
    "SessionMismatch",
    "TruncatedDocument",
    "UnknownKey",
    "UnsignedDocument",
    "UnsupportedVersion",
    "VerifiedDelta",
    "VerifiedSnapshot",
    "VersionMismatch",
    "VpnProtocol",
    "apply_delta",
    "changes_digest",
    "check_not_older",
    "compact_of",
    "decode_network",
    "dump_document",
    "encode_network",
    "format_time",
    "is_compact",
    "key_id",
    "load_json",
    "merge_deltas",
    "set_hash",
    "sign_compact_snapshot",
    "sign_delta",
    "sign_snapshot",
    "sign_snapshot_bytes",
    "signing_bytes",
    "v1_valid_until",
    "verify_compact",
    "verify_document",
]
