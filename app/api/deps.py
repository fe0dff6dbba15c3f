"""Dependencies every route shares: settings, the unit of work, the caller, JSON bodies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import new_session
from app.errors import Unauthorized, UnsupportedMediaType
from app.keys.service import Caller, authenticate


class UnitOfWork:
    """The request's session, and what to do only once its transaction has committed."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._after_commit: list[Callable[[], object]] = []

    def after_commit(self, action: Callable[[], object]) -> None:
        self._after_commit.append(action)

    def commit(self) -> None:
        self.session.commit()
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            action()


def unit_of_work() -> Iterator[UnitOfWork]:
    """Committed when the route returns, before the response is sent; rolled back on error."""
    work = UnitOfWork(new_session())
    try:
        yield work
        work.commit()
    except BaseException:
        work.session.rollback()
        raise
    finally:
        work.session.close()


def current_caller(
    request: Request, work: Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send `Authorization: Bearer <api key>`")
    return authenticate(work.session, secret=secret.strip())


def json_body(request: Request) -> None:
    """415 for a body that does not say it is JSON (checked before the body is parsed)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")


SettingsDep = Annotated[Settings, Depends(get_settings)]
WorkDep = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
CallerDep = Annotated[Caller, Depends(current_caller)]
JsonBody = Depends(json_body)
