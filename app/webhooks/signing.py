"""The Standard Webhooks headers of one request: webhook-id, -timestamp and -signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from app.webhooks.secrets import signing_key


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature: HMAC-SHA256 over "{id}.{timestamp}.{body}"."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    secrets: Sequence[str], *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers; one signature per live secret, space-separated (newest first)."""
    signatures = [
        sign(secret, message_id=message_id, timestamp=timestamp, body=body) for secret in secrets
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
