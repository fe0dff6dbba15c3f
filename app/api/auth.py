"""Who is calling: the request's API key, in one place, and 401 before any other refusal.

Routes of the /v1 API use AuthenticatedRoute. A request without `Authorization: Bearer`
is refused before anything else is read. A key is looked up in the route's first
database call (`credentials.caller(work.session)` inside `work.run`), sharing its
threadpool handoff: a second handoff per request would cost about a fifth of the
accept throughput. A request refused before that call (a 422 from validation, a 415,
a 400 or 404 from the path) has its key checked first, here, so a caller without a
valid key hears 401 and nothing that would tell it about the API; the error handlers
never touch the database.

Each route says which scope of key it needs (SPEC §11) with one of `Needs.read`,
`Needs.send`, `Needs.full` among its dependencies (or its router's; the innermost wins).
The key's scope is checked where the key is looked up, so a key outside the route's
scope hears 403 after any 401 and before anything else. A route that declares nothing
is for `full` keys only (tests/api/test_scopes.py refuses it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from app.api.openapi import problems
from app.db import session_scope
from app.errors import Forbidden, PayloadTooLarge, PochtaError, Unauthorized
from app.keys.models import KeyScope
from app.keys.scopes import permits
from app.keys.service import Caller, authenticate


def bearer_secret(request: Request) -> str:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send `Authorization: Bearer <api key>`")
    return secret.strip()


@dataclass(frozen=True, slots=True)
class _Needs:
    """A route's declared scope: a marker among its dependencies, read (and taken out) by
    AuthenticatedRoute; never called."""

    scope: KeyScope

    async def __call__(self) -> None:
        return None


class Needs:
    """What a route needs of its key, in one word: `dependencies=[Needs.read]`."""

    read = Depends(_Needs(KeyScope.read))
    send = Depends(_Needs(KeyScope.send))
    full = Depends(_Needs(KeyScope.full))


def declared_scope(dependencies: list[params.Depends]) -> KeyScope | None:
    """The scope a route's dependencies declare (the innermost Needs), or None."""
    needs = [d.dependency.scope for d in dependencies if isinstance(d.dependency, _Needs)]
    return needs[-1] if needs else None


class Credentials:
    """The request's bearer key, and the caller it belongs to once looked up."""

    def __init__(self, secret: str, needs: KeyScope = KeyScope.full) -> None:
        self._secret = secret
        self._needs = needs
        self._caller: Caller | None = None

    @property
    def checked(self) -> bool:
        return self._caller is not None

    @property
    def tenant(self) -> str | None:
        """The key's tenant once looked up (for the access log), else None."""
        return self._caller.tenant if self._caller is not None else None

    def caller(self, session: Session) -> Caller:
        """Who holds the key; Unauthorized if it is unknown or revoked, Forbidden if its
        scope does not cover the route. Looked up once."""
        if self._caller is None:
            self._caller = authenticate(session, secret=self._secret)
        if not permits(self._caller.scope, self._needs):
            raise Forbidden(
                f"a {self._caller.scope} key cannot use this route; it needs a "
                f"{self._needs} key" + ("" if self._needs is KeyScope.full else " or a full one")
            )
        return self._caller

    async def check(self) -> None:
        """Look the key up on its own (for a request refused before its first call)."""

        def lookup() -> None:
            with session_scope() as session:
                self.caller(session)

        await run_in_threadpool(lookup)


class AuthenticatedRoute(APIRoute):
    """A route whose every refusal is a 401 first, when the key is not valid, then a 403
    when the key's scope does not cover it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Read before APIRoute.__init__, which builds the handler below; the markers are
        # then left out, so that no request pays for calling them.
        dependencies = list(kwargs.get("dependencies") or [])
        self.declared_scope = declared_scope(dependencies)
        kwargs["dependencies"] = [d for d in dependencies if not isinstance(d.dependency, _Needs)]
        # Undeclared means full keys only: a route nobody thought about is not opened up.
        self.needs = self.declared_scope or KeyScope.full
        responses = dict(kwargs.get("responses") or {})
        responses.setdefault(403, problems(403)[403])
        kwargs["responses"] = responses
        kwargs["openapi_extra"] = {
            **(kwargs.get("openapi_extra") or {}),
            "x-pochta-scope": self.needs.value,
        }
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        needs = self.needs

        async def authenticated_first(request: Request) -> Response:
            credentials = Credentials(bearer_secret(request), needs)  # 401 without I/O
            request.state.credentials = credentials
            try:
                return await handle(request)
            except (RequestValidationError, HTTPException, PochtaError) as refused:
                if credentials.checked or isinstance(refused, Unauthorized | PayloadTooLarge):
                    raise
                # The database being away leaves the first refusal true.
                with contextlib.suppress(DBAPIError):
                    await credentials.check()
                raise
            finally:
                # The access log (app/api/access_log.py) reads it from the ASGI scope.
                request.state.tenant = credentials.tenant

        return authenticated_first


async def request_credentials(request: Request) -> Credentials:
    """The credentials AuthenticatedRoute took from this request."""
    credentials: Credentials = request.state.credentials
    return credentials


CredentialsDep = Annotated[Credentials, Depends(request_credentials)]
