"""The dashboard (SPEC §11): an application of its own, mounted by app/main.py at /ui.

Its own error handlers answer in HTML (the API's answer problems in JSON), and every
response carries a Content-Security-Policy that allows this origin's files alone: no
inline script, nothing from another host.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PochtaError
from app.ui import (
    auth_pages,
    event_pages,
    message_pages,
    relay_pages,
    suppression_pages,
    webhook_pages,
)
from app.ui.render import render
from app.ui.viewer import Refused, SignInRequired

STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """The policy headers on every dashboard response; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The path keeps the /ui prefix or not depending on the Starlette version's Mount.
        static = "/static/" in scope["path"]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _error(status: int, title: str, detail: str) -> Response:
    return render("error.html", status_code=status, title=title, detail=detail, viewer=None)


def _install_handlers(ui: FastAPI) -> None:
    @ui.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        if request.url.path.endswith("/messages/status"):
            return JSONResponse({"detail": "signed out"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)

    @ui.exception_handler(Refused)
    async def _refused(_: Request, error: Refused) -> Response:
        return _error(403, "Not allowed", error.detail)

    @ui.exception_handler(PochtaError)
    async def _pochta(_: Request, error: PochtaError) -> Response:
        return _error(error.status, error.title, error.detail)

    @ui.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> Response:
        problem = error.errors()
        detail = "; ".join(str(e.get("msg", "invalid")) for e in problem) or "invalid request"
        return _error(422, "Invalid request", detail)

    @ui.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> Response:
        return _error(error.status_code, "Error", str(error.detail))

    @ui.exception_handler(OperationalError)
    @ui.exception_handler(InterfaceError)
    async def _database(_: Request, __: Exception) -> Response:
        return _error(503, "Service unavailable", "the database cannot be reached")


def create_ui() -> FastAPI:
    """The dashboard application, to be mounted at /ui."""
    ui = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    ui.include_router(auth_pages.router)
    ui.include_router(message_pages.router)
    ui.include_router(event_pages.router)
    ui.include_router(webhook_pages.router)
    ui.include_router(suppression_pages.router)
    ui.include_router(relay_pages.router)
    ui.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_handlers(ui)
    return ui


def install(app: FastAPI) -> None:
    """Mount the dashboard at /ui, its security headers around it."""
    app.mount("/ui", SecurityHeaders(create_ui()))
