"""Secrets for the web app: the signing key refuses insecure defaults, and CSRF tokens.

A CSRF token is an HMAC of the visitor's session id under the server's key: it can only come from a
page this server rendered for this session, so a form posted from elsewhere carries none that fits.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from vpnreg.settings import Settings

log = logging.getLogger(__name__)

#: Values people paste from examples; never acceptable in production.
KNOWN_DEFAULT_KEYS = frozenset(
    {"", "changeme", "change-me", "secret", "development", "dev", "test"}
)
MIN_KEY_LENGTH = 32


class InsecureSettings(RuntimeError):
    """The server refuses to start with these settings."""


def signing_key(settings: Settings) -> bytes:
    """The key for sessions and CSRF: random per start in development, required in production."""
    key = settings.secret_key
    if settings.is_production:
        if key is None or key.strip().lower() in KNOWN_DEFAULT_KEYS:
            raise InsecureSettings(
                "VPNREG_ENV=production needs VPNREG_SECRET_KEY set to a random value of at least "
                f"{MIN_KEY_LENGTH} characters"
            )
        if len(key) < MIN_KEY_LENGTH:
            raise InsecureSettings(
                f"VPNREG_SECRET_KEY is {len(key)} characters; "
                f"production needs at least {MIN_KEY_LENGTH}"
            )
        return key.encode()
    if key is None:
        log.warning(
            "development mode: no VPNREG_SECRET_KEY, using a random key (sessions end at restart)"
        )
        return secrets.token_bytes(32)
    return key.encode()


def csrf_token(key: bytes, session_id: str) -> str:
    return hmac.new(key, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()


def csrf_valid(key: bytes, session_id: str, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(csrf_token(key, session_id), token)
