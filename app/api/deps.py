"""Dependencies every route shares: settings, the unit of work, the caller, JSON bodies."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import new_session
from app.errors import NotFound, Unauthorized, UnsupportedMediaType
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

# Printable ASCII: what every id Pochta hands out is; anything else cannot name a message.
_MESSAGE_ID = re.compile(r"[!-~]{1,64}")


def message_id_param(
    message_id: Annotated[
        str,
        Path(
            description="The message's id, as POST /v1/messages returned it.",
            examples=["msg_01jdq3z8x0d4v6m2k7r9t5w1ya"],
        ),
    ],
    _caller: CallerDep,
) -> str:
    """The id in the path (after auth); 404 without a query for what cannot be an id."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise NotFound("no message with that id")
    return message_id


MessageIdDep = Annotated[str, Depends(message_id_param)]
JsonBody = Depends(json_body)
