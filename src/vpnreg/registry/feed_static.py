"""The static feed: the signed state as files any web server or CDN can serve (ADR 0009).

`write_static_feed(directory, history, ...)` writes, for the current state of a feed history,
`snapshot-<serial>-<hash>.json.gz` and one `delta-<serial>-<hash>.json.gz` per kept single-step
delta (the signed documents of ADR 0001/0006, gzipped), then the signed `notification.json`
naming them with their SHA-256. Files are written atomically (temporary file, fsync, rename) and
never rewritten in place: a name carries the first 16 hex of its content's hash, so a document
re-signed for a later expiry is a new file. A file the notification stops naming has its mtime
set to the moment it was dropped, and is removed once that is older than the grace period, so a
cache that still serves an older notification never points at a missing file.

Beside the snapshot, its compact twin `snapshot-<serial>-<hash>.compact.gz` (ADR 0011: the same
signed state as records, which clients load in a fraction of the time), found by name and not
listed in the notification, so every ADR 0009 client still reads the notification.

Called by `vpnreg feed publish --to DIR` and by the feed server on each publish when
VPNREG_FEED_STATIC_DIR names a directory.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vpnreg.core.feed import FeedError, FeedHistory, HistoryDelta, dump_document, key_id
from vpnreg.core.feed.compact import sign_history_compact
from vpnreg.core.feed.document import expires_after, sign_history_delta, sign_history_snapshot
from vpnreg.core.feed.notification import (
    FileRef,
    Notification,
    compact_sidecar,
    sign_notification,
    verify_notification,
)
from vpnreg.files import write_atomic

__all__ = [
    "NOTIFICATION_FILE",
    "StaticFeedOptions",
    "StaticWrite",
    "read_notification",
    "static_options",
    "write_static_feed",
]

NOTIFICATION_FILE = "notification.json"
#: The files this writer owns in the directory (anything else there is left alone), and the
#: temporary files a crash may have left behind.
_OWN_FILE = re.compile(
    r"(snapshot|delta)-\d+-[0-9a-f]{16}\.json\.gz|snapshot-\d+-[0-9a-f]{16}\.compact\.gz"
)
_OWN_TEMPORARY = re.compile(
    r"\.((snapshot|delta)-\d+-[0-9a-f]{16}\.(json|compact)\.gz|notification\.json)\..*\.tmp"
)
#: Re-reading our own notification checks its signature, not its expiry.
_BEFORE_ANY_EXPIRY = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaticFeedOptions:
    #: How long a signed document (and the notification) stays valid.
    validity: dt.timedelta = dt.timedelta(days=1)
    #: A file is re-signed (as a new file) once this fraction of its validity has gone.
    resign_after: float = 0.5
    #: How long a file no longer named by the notification stays before it is removed.
    grace: dt.timedelta = dt.timedelta(hours=1)
    #: Write the snapshot's compact twin too (ADR 0011).
    compact: bool = True


def static_options(*, validity_s: float, grace_s: float) -> StaticFeedOptions:
    """The options from the feed settings (VPNREG_FEED_VALIDITY_S, VPNREG_FEED_STATIC_GRACE_S)."""
    return StaticFeedOptions(
        validity=dt.timedelta(seconds=validity_s), grace=dt.timedelta(seconds=grace_s)
    )


@dataclass(frozen=True)
class StaticWrite:
    """What one write did."""

    notification: Notification
    #: Whether notification.json was replaced (False: nothing had changed or aged).
    replaced: bool
    written: tuple[str, ...]
    removed: tuple[str, ...]


def _gzip(body: bytes) -> bytes:
    # mtime 0: the same document always gives the same bytes, hence the same name.
    return gzip.compress(body, compresslevel=6, mtime=0)


class _Writer:
    def __init__(
        self,
        directory: Path,
        *,
        key: Ed25519PrivateKey,
        now: dt.datetime,
        options: StaticFeedOptions,
        previous: Notification | None,
    ) -> None:
        self.directory = directory
        self.key = key
        self.now = now
        self.options = options
        self.previous = previous
        self.written: list[str] = []

    def fresh(self, expires: dt.datetime) -> bool:
        """Whether a document expiring then still has more than (1 - resign_after) of its
        validity ahead (else it is re-signed)."""
        keep = self.options.validity * (1 - self.options.resign_after)
        return expires - self.now > keep

    def reusable(self, ref: FileRef) -> bool:
        """A file of the previous notification still usable: fresh, present, intact (and a
        snapshot's compact twin present, when twins are written)."""
        if not self.fresh(ref.expires):
            return False
        twin = compact_sidecar(ref.uri) if ref.uri.startswith("snapshot-") else None
        if self.options.compact and twin is not None and not (self.directory / twin).is_file():
            return False
        try:
            return ref.matches((self.directory / ref.uri).read_bytes())
        except OSError:
            return False

    def put(self, kind: str, serial: int, body: bytes, expires: dt.datetime) -> FileRef:
        data = _gzip(body)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{kind}-{serial}-{digest[:16]}.json.gz"
        self.put_named(name, data)
        return FileRef(serial, name, digest, expires)

    def put_named(self, name: str, data: bytes) -> None:
        path = self.directory / name
        digest = hashlib.sha256(data).digest()
        if not (path.exists() and hashlib.sha256(path.read_bytes()).digest() == digest):
            write_atomic(path, data)
            self.written.append(name)
        _touch(path, self.now)

    def expires(self, created: dt.datetime) -> dt.datetime:
        return expires_after(created, now=self.now, validity=self.options.validity)

    def snapshot(self, history: FeedHistory) -> FileRef:
        prev = self.previous
        if (
            prev is not None
            and (prev.session_id, prev.serial) == (history.session_id, history.serial)
            and self.reusable(prev.snapshot)
        ):
            return prev.snapshot
        snap = history.snapshot()
        until = self.expires(snap.created)
        body = sign_history_snapshot(snap, expires=until, private_key=self.key)
        ref = self.put("snapshot", snap.serial, body, until)
        twin = compact_sidecar(ref.uri)
        if self.options.compact and twin is not None:
            # Written before the notification that names its JSON twin, as every file is.
            compact = sign_history_compact(snap, expires=until, private_key=self.key)
            self.put_named(twin, _gzip(compact))
        return ref

    def delta(self, history: FeedHistory, step: HistoryDelta) -> FileRef:
        prev = self.previous
        if prev is not None and prev.session_id == history.session_id:
            for ref in prev.deltas:
                if ref.serial == step.serial and self.reusable(ref):
                    return ref
        until = self.expires(step.created)
        document = sign_history_delta(history.session_id, step, expires=until, private_key=self.key)
        return self.put("delta", step.serial, dump_document(document), until)


def _touch(path: Path, moment: dt.datetime) -> None:
    stamp = moment.timestamp()
    os.utime(path, (stamp, stamp))


def read_notification(directory: Path, key: Ed25519PrivateKey) -> Notification | None:
    """The notification this key last wrote in `directory` (None if missing or not valid)."""
    public = key.public_key()
    try:
        raw = (directory / NOTIFICATION_FILE).read_bytes()
        return verify_notification(raw, trusted={key_id(public): public}, now=_BEFORE_ANY_EXPIRY)
    except FileNotFoundError:
        return None
    except (OSError, FeedError) as exc:
        _LOG.warning("static feed: ignoring %s: %s", directory / NOTIFICATION_FILE, exc)
        return None


def write_static_feed(
    directory: Path,
    history: FeedHistory,
    *,
    key: Ed25519PrivateKey,
    now: dt.datetime,
    options: StaticFeedOptions | None = None,
) -> StaticWrite:
    """Bring `directory` to the state of `history` (see the module docstring). Raises OSError
    when the directory cannot be written; the notification is replaced last, so a failure
    leaves the previous one and every file it names in place."""
    opts = options if options is not None else StaticFeedOptions()
    directory.mkdir(parents=True, exist_ok=True)
    previous = read_notification(directory, key)
    writer = _Writer(directory, key=key, now=now, options=opts, previous=previous)
    snapshot = writer.snapshot(history)
    deltas = tuple(writer.delta(history, step) for step in history.deltas)
    candidate = Notification(
        session_id=history.session_id,
        serial=history.serial,
        set_hash=history.entries.set_hash(),
        created=history.created,
        expires=writer.expires(history.created),
        snapshot=snapshot,
        deltas=deltas,
    )
    same_files = previous is not None and (
        previous.session_id,
        previous.serial,
        previous.set_hash,
        previous.created,
        previous.files(),
    ) == (
        candidate.session_id,
        candidate.serial,
        candidate.set_hash,
        candidate.created,
        candidate.files(),
    )
    replaced = not (same_files and previous is not None and writer.fresh(previous.expires))
    current = candidate
    if replaced:
        named = _named(candidate)
        if previous is not None:
            # Dropped now: the grace period runs from this moment (the file's mtime).
            for name in sorted(_named(previous) - named):
                if (directory / name).exists():
                    _touch(directory / name, now)
        write_atomic(directory / NOTIFICATION_FILE, sign_notification(candidate, key))
    else:
        assert previous is not None
        current = previous
    removed = _sweep(directory, _named(current), now - opts.grace)
    return StaticWrite(current, replaced, tuple(writer.written), removed)


def _named(notification: Notification) -> set[str]:
    """The files a notification stands for: those it names and its snapshot's compact twin."""
    names = {ref.uri for ref in notification.files()}
    twin = compact_sidecar(notification.snapshot.uri)
    return names | ({twin} if twin is not None else set())


def _sweep(directory: Path, named: set[str], before: dt.datetime) -> tuple[str, ...]:
    """Remove our files not named by the notification whose mtime is older than `before`."""
    removed = []
    limit = before.timestamp()
    for path in sorted(directory.iterdir()):
        name = path.name
        if name in named or not (_OWN_FILE.fullmatch(name) or _OWN_TEMPORARY.fullmatch(name)):
            continue
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed.append(name)
        except FileNotFoundError:
            continue
    return tuple(removed)
