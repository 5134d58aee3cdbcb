"""The feed's exceptions: one class per way a document or a delta can be refused."""

from __future__ import annotations


class FeedError(Exception):
    """Base of every feed error; the message is one line saying what was wrong."""


class MalformedDocument(FeedError):
    """The body is not JSON, or a field is missing, extra, mistyped or out of range."""


class TruncatedDocument(MalformedDocument):
    """The JSON ends before the document does (a cut-off download)."""


class DocumentTooLarge(FeedError):
    """The document (or the response carrying it) is larger than the reader accepts."""


class UnsignedDocument(FeedError):
    """The document carries no key id or no signature."""


class UnknownKey(FeedError):
    """The document is signed by a key that is not trusted."""


class BadSignature(FeedError):
    """The signature does not verify over the document's canonical bytes."""


class HashMismatch(FeedError):
    """The entries do not hash to the set hash the document states."""


class Expired(FeedError):
    """The document's expiry time has passed."""


class Rollback(FeedError):
    """The document is older than the state already held."""


class SessionMismatch(FeedError):
    """A delta belongs to another feed session than the held state."""


class NotApplicable(FeedError):
    """A delta does not start from the held serial or does not fit the held set."""


class UnsupportedVersion(FeedError):
    """The document is of a feed version this client does not read (a newer registry)."""


class VersionMismatch(NotApplicable):
    """A delta of another entry version than the held set: the client needs a snapshot."""
