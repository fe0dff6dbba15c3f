"""Signing in to the dashboard with an API key, and signing out."""

from __future__ import annotations

import hmac
import logging
import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from app.config import get_settings
from app.db import session_scope
from app.errors import Unauthorized
from app.keys import service as keys
from app.ui.render import render
from app.ui.session import end_session, new_session, read_session, write_session
from app.ui.viewer import SIGN_IN_SCOPES, Refused, SignInRequired, signed_in

router = APIRouter()
log = logging.getLogger("pochta.ui")

HOME = "/ui/messages"
# Only a path of the dashboard itself: never another host (no open redirect).
_NEXT = re.compile(r"/ui/[A-Za-z0-9_\-./?=&%]*")


def safe_next(value: str | None) -> str:
    if value and _NEXT.fullmatch(value) and "//" not in value and "/.." not in value:
        return value
    return HOME


@router.get("/")
def home() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form; a viewer already signed in goes straight on."""
    settings = get_settings()
    try:
        signed_in(request)
        return RedirectResponse(safe_next(next), status_code=303)
    except SignInRequired:
        pass
    session = read_session(request, settings)
    anonymous = session if session is not None and session.key_id is None else new_session()
    response = render(
        "login.html", viewer=None, csrf=anonymous.csrf, next=safe_next(next), error=None
    )
    write_session(response, request, settings, anonymous)
    return response


@router.post("/login")
def sign_in(
    request: Request,
    key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = HOME,
) -> Response:
    """Check the key; on success a new session (and a new CSRF token) for it."""
    settings = get_settings()
    session = read_session(request, settings)
    if session is None or not csrf or not hmac.compare_digest(csrf, session.csrf):
        raise Refused("the sign-in form is stale: reload the page and sign in again")
    error = None
    status = 401
    with session_scope() as db:
        try:
            caller = keys.authenticate(db, secret=key.strip())
            found = keys.active_key(db, key_id=caller.key_id)
        except Unauthorized:
            found = None
        if found is None:
            error = "That key is unknown or revoked."
        elif found.scope not in SIGN_IN_SCOPES:
            error = "A send key may only submit and cancel; sign in with a full or read key."
            status = 403
    if found is None or error is not None:
        # Never the key itself: only that a sign-in was refused, and why.
        log.warning("dashboard sign-in refused", extra={"reason": error})
        return render(
            "login.html",
            status_code=status,
            viewer=None,
            csrf=session.csrf,
            next=safe_next(next),
            error=error,
        )
    log.info("dashboard sign-in", extra={"key_id": found.id, "tenant": found.tenant})
    signed = RedirectResponse(safe_next(next), status_code=303)
    write_session(signed, request, settings, new_session(key_id=found.id))
    return signed


@router.post("/logout")
def sign_out(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """End the session: the cookie is dropped and the next page asks for a key again."""
    session = read_session(request, get_settings())
    if session is not None and (not csrf or not hmac.compare_digest(csrf, session.csrf)):
        raise Refused("the sign-out form is stale: reload the page and retry")
    response = RedirectResponse("/ui/login", status_code=303)
    end_session(response, request)
    return response
