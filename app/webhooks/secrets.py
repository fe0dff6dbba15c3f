"""Webhook signing secrets: made, encrypted at rest, and turned into the bytes that sign.

A secret is stored encrypted (Fernet) under a key derived from POCHTA_SECRET_KEY, so a
database dump alone does not let anyone sign a request as Pochta.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet

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


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: the base64 after the "whsec_" prefix, decoded."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def _fernet(settings: Settings) -> Fernet:
    # Fernet wants its 32-byte key as urlsafe base64.
    return Fernet(base64.urlsafe_b64encode(derived_key(settings, "webhook-secrets")))
