"""Webhook signing secrets: made, encrypted at rest, and turned into the bytes that sign.

A secret is stored encrypted (Fernet) under a key derived from POCHTA_SECRET_KEY, so a
database dump alone does not let anyone sign a request as Pochta.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken

from app.config import Settings
from app.secret_key import derived_key

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh secret: "whsec_" + base64 of 32 random bytes (Standard Webhooks)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def encrypt(settings: Settings, secret: str) -> str:
    """The secret as stored in the database."""
    return _fernet(settings).encrypt(secret.encode()).decode()


def decrypt(settings: Settings, token: str) -> str:
    """The secret a stored token holds."""
    return _fernet(settings).decrypt(token.encode()).decode()


# What a request that could not be signed records: the stored secret does not decrypt
# under this POCHTA_SECRET_KEY (it was changed since), and rotating makes a new one.
UNREADABLE = "the endpoint's secret does not decrypt under POCHTA_SECRET_KEY; rotate it"


def signing_secrets(settings: Settings, tokens: Sequence[str]) -> list[str] | None:
    """The secrets stored tokens hold, current first; a previous one that does not decrypt
    is left out, and None if the current one does not."""
    readable = []
    for index, token in enumerate(tokens):
        try:
            readable.append(decrypt(settings, token))
        except InvalidToken:
            if index == 0:
                return None
    return readable


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: the base64 after the "whsec_" prefix, decoded."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def _fernet(settings: Settings) -> Fernet:
    # Fernet wants its 32-byte key as urlsafe base64.
    return Fernet(base64.urlsafe_b64encode(derived_key(settings, "webhook-secrets")))
