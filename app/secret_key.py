"""POCHTA_SECRET_KEY (SPEC §9): the deployment's one secret, and a key per use derived from it.

It signs VERP tokens and dashboard sessions and encrypts webhook secrets. Set, it is
used as given. Unset, the embedded mode keeps one in var/secret.key (mode 0600), made
at first use; with PostgreSQL it is required (Settings refuses to start without it),
since every host of such a deployment must share it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from app.config import Settings

SECRET_FILE = Path("var/secret.key")


def secret_key(settings: Settings) -> bytes:
    """The deployment's secret: POCHTA_SECRET_KEY, or the embedded mode's own file."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return _embedded_secret(SECRET_FILE)


def derived_key(settings: Settings, purpose: str) -> bytes:
    """32 bytes for one use ("verp", "session", "webhook-secrets"): a key leaked from one
    use does not give away the others."""
    return hmac.new(secret_key(settings), purpose.encode(), hashlib.sha256).digest()


# The embedded mode's secret, once read: VERP signs every message with it.
_read: dict[Path, bytes] = {}


def _embedded_secret(path: Path) -> bytes:
    key = path.resolve()
    if key not in _read:
        _read[key] = _read_or_make(path)
    return _read[key]


def _read_or_make(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode()
    try:
        # O_EXCL: two processes starting at once agree on the first one written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as file:
        file.write(value + b"\n")
    return value
