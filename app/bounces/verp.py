"""VERP addresses (SPEC §9): `bounce+<token>@<POCHTA_BOUNCE_DOMAIN>`, the token naming a message.

The token is the message id's random part and a truncated HMAC of the whole id under
derived_key(settings, "verp"), both lower-case base32: `bounce+` and 26 + 1 + 16
characters make a 50-octet local part (RFC 5321 allows 64). Only the holder of
POCHTA_SECRET_KEY can make one, so a report that names a message by its token really
comes back from mail Pochta sent. Verification ignores case, as some MTAs fold it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from app.config import Settings
from app.secret_key import derived_key

PREFIX = "bounce+"
_ID_PREFIX = "msg_"
# 80 bits of HMAC: forging one means guessing it, at an SMTP round trip per guess.
_MAC_BYTES = 10
_TOKEN = re.compile(r"([0-9a-z]{26})-([a-z2-7]{16})")


def _mac(settings: Settings, message_id: str) -> str:
    digest = hmac.new(derived_key(settings, "verp"), message_id.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:_MAC_BYTES]).decode("ascii").lower()


def make_address(settings: Settings, message_id: str, domain: str) -> str:
    """The MAIL FROM for a message: bounce+<token>@domain."""
    token = f"{message_id.removeprefix(_ID_PREFIX)}-{_mac(settings, message_id)}"
    return f"{PREFIX}{token}@{domain}"


def has_token(address: str) -> bool:
    """Whether the address's local part looks like a VERP one (forged or not)."""
    return address.partition("@")[0].lower().startswith(PREFIX)


def read_address(settings: Settings, address: str) -> str | None:
    """The message id a VERP address names, or None if it is not one or its HMAC is wrong."""
    local, _, _domain = address.rpartition("@")
    local = local.lower()
    if not local.startswith(PREFIX):
        return None
    found = _TOKEN.fullmatch(local.removeprefix(PREFIX))
    if found is None:
        return None
    message_id = _ID_PREFIX + found.group(1)
    if not hmac.compare_digest(found.group(2), _mac(settings, message_id)):
        return None
    return message_id
