"""Who is looking at the dashboard, and whether they may change what they look at."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.config import get_settings
from app.db import session_scope
from app.keys import service as keys
from app.keys.models import KeyScope
from app.keys.service import Caller
from app.ui.session import read_session


class SignInRequired(Exception):
    """No session, an expired one, or its key was revoked: off to /ui/login."""


class Refused(Exception):
    """A change the viewer may not make (a read key, a missing or wrong CSRF token): 403."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


log = logging.getLogger("pochta.ui")

# A send key may only submit and cancel through the API (SPEC §11): it reads nothing,
# so it has nothing to look at here.
SIGN_IN_SCOPES = (KeyScope.full, KeyScope.read)


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in key: whose messages it sees, what it may do, its session's CSRF token."""

    caller: Caller
    scope: KeyScope
    key_name: str
    csrf: str

    @property
    def can_change(self) -> bool:
        return self.scope is KeyScope.full

    def audit(self, action: str, **fields: object) -> None:
        """One log line for a change made through the dashboard, naming the key behind it."""
        log.info(
            f"dashboard: {action}",
            extra={"key_id": self.caller.key_id, "tenant": self.caller.tenant, **fields},
        )

    def authorize_change(self, token: str | None) -> None:
        """Refused unless the form carried this session's token and the key may change things."""
        if not token or not hmac.compare_digest(token, self.csrf):
            raise Refused("the form's CSRF token is missing or stale: reload the page and retry")
        if not self.can_change:
            raise Refused(f"a {self.scope.value} key can look but not change anything")


def signed_in(request: Request) -> Viewer:
    """The viewer of this request; SignInRequired unless its key is still active."""
    session = read_session(request, get_settings())
    if session is None or session.key_id is None:
        raise SignInRequired
    with session_scope() as db:
        key = keys.active_key(db, key_id=session.key_id)
        if key is None or key.scope not in SIGN_IN_SCOPES:
            raise SignInRequired
        return Viewer(
            caller=Caller(key_id=key.id, tenant=key.tenant),
            scope=key.scope,
            key_name=key.name,
            csrf=session.csrf,
        )


ViewerDep = Annotated[Viewer, Depends(signed_in)]
