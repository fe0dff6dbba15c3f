"""The dashboard's session: a cookie signed with POCHTA_SECRET_KEY, holding no secret.

The cookie carries the signed-in key's id (never the key itself), the CSRF token of the
session's forms, and is timestamped by itsdangerous so that it expires. Before sign-in
it carries a CSRF token alone, for the sign-in form. Each request looks the key up again
(app/ui/viewer.py), so revoking it ends every session it has.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from app.config import Settings
from app.secret_key import derived_key

COOKIE = "pochta_session"
PATH = "/ui"


@dataclass(frozen=True, slots=True)
class UiSession:
    """What the cookie holds: the key signed in (None before sign-in) and the CSRF token."""

    csrf: str
    key_id: str | None = None


def new_session(key_id: str | None = None) -> UiSession:
    """A fresh session, with a CSRF token of its own (a new one at every sign-in)."""
    return UiSession(csrf=secrets.token_urlsafe(32), key_id=key_id)


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(derived_key(settings, "session"), salt="pochta.ui.session")


def read_session(request: Request, settings: Settings) -> UiSession | None:
    """The request's session if its cookie is ours, unaltered and not expired."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        data = _serializer(settings).loads(value, max_age=int(settings.ui_session_seconds))
    except BadSignature:  # SignatureExpired is one too
        return None
    if not isinstance(data, dict):
        return None
    csrf, key_id = data.get("csrf"), data.get("key")
    if not isinstance(csrf, str) or not (key_id is None or isinstance(key_id, str)):
        return None
    return UiSession(csrf=csrf, key_id=key_id)


def write_session(
    response: Response, request: Request, settings: Settings, session: UiSession
) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, Secure when the request is HTTPS."""
    value = _serializer(settings).dumps({"csrf": session.csrf, "key": session.key_id})
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(settings.ui_session_seconds),
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
