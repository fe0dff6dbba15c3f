"""Creating, listing, revoking and checking API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.clock import utcnow
from app.errors import NotFound, Unauthorized
from app.keys import repository
from app.keys.models import ApiKey, KeyScope

KEY_PREFIX = "pk_"
# A tab or a line break would split a `keys list` line; other controls hide what is there.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The columns' sizes (app/keys/models.py).
_MAX_CHARS = {"tenant": 64, "name": 200}


class BadLabel(ValueError):
    """A tenant or key name that `keys create` refuses; the message is one line."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is making a request: the key's id, the tenant whose messages it sees, its scope."""

    key_id: str
    tenant: str
    scope: KeyScope = KeyScope.full


def hash_key(secret: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, *, tenant: str, name: str, scope: KeyScope = KeyScope.full
) -> tuple[ApiKey, str]:
    """A new key for tenant; the secret is returned here once and never stored."""
    _check_label("tenant", tenant)
    _check_label("name", name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        tenant=tenant, name=name, key_hash=hash_key(secret), scope=scope, created_at=utcnow()
    )
    repository.add(session, key)
    return key, secret


def _check_label(field: str, value: str) -> None:
    if not value.strip():
        raise BadLabel(f"--{field} must not be empty")
    if _CONTROL.search(value):
        raise BadLabel(f"--{field} must not contain control characters or line breaks")
    if len(value) > _MAX_CHARS[field]:
        raise BadLabel(f"--{field} must be at most {_MAX_CHARS[field]} characters")


def list_keys(session: Session) -> list[ApiKey]:
    return repository.all_keys(session)


def revoke_key(session: Session, *, key_id: str) -> bool:
    """True if the key is revoked now, False if it already was; NotFound if there is none."""
    revoked = repository.revoke(session, key_id=key_id, now=utcnow())
    recent_keys.forget()
    if not revoked and not repository.exists(session, key_id=key_id):
        raise NotFound(f"no key {key_id}")
    return revoked


# A key found active is trusted for this long without asking the database again: a
# request then costs one round trip less. So a revoked key stops working in every API
# process within this bound (in the process that revoked it, at once). Unknown and
# revoked keys are never remembered: each such request asks the database.
KEY_TRUSTED_SECONDS = 1.0
_MAX_REMEMBERED = 10_000


class RecentKeys:
    """Key hashes found active in this process, each with when that lookup started."""

    def __init__(self, trusted_seconds: float = KEY_TRUSTED_SECONDS) -> None:
        self._trusted_seconds = trusted_seconds
        self._found: dict[str, tuple[float, Caller]] = {}

    def get(self, key_hash: str) -> Caller | None:
        # Plain dict reads and writes: atomic under the GIL, no lock on the hot path.
        found = self._found.get(key_hash)
        if found is None or time.monotonic() - found[0] >= self._trusted_seconds:
            return None
        return found[1]

    def put(self, key_hash: str, caller: Caller, *, looked_up_at: float) -> None:
        if len(self._found) >= _MAX_REMEMBERED:
            self._found.clear()
        self._found[key_hash] = (looked_up_at, caller)

    def forget(self) -> None:
        self._found.clear()


recent_keys = RecentKeys()


def authenticate(session: Session, *, secret: str) -> Caller:
    """The caller a bearer secret belongs to; Unauthorized if unknown or revoked."""
    key_hash = hash_key(secret)
    remembered = recent_keys.get(key_hash)
    if remembered is not None:
        return remembered
    # Counted from before the query: the row it reads is at least this recent.
    looked_up_at = time.monotonic()
    row = repository.active_by_hash(session, key_hash=key_hash)
    if row is None:
        raise Unauthorized("the API key is unknown or revoked")
    caller = Caller(key_id=row.id, tenant=row.tenant, scope=row.scope)
    recent_keys.put(key_hash, caller, looked_up_at=looked_up_at)
    return caller


def active_key(session: Session, *, key_id: str) -> ApiKey | None:
    """The key with this id while it is not revoked (a dashboard session asks each time)."""
    return repository.active_by_id(session, key_id=key_id)
