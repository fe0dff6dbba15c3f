"""Idempotency-Key for any route that creates something: a dependency, and one call.

A route takes `idempotency: IdempotencyDep` and returns `idempotency.keep(answer, ...)`:

- without the header, nothing changes;
- with it, the dependency first records the request as in flight in its own committed
  transaction, or answers at once: the stored answer with `Idempotent-Replayed: true`,
  422 if the key went with another request, 409 while that request runs;
- `keep()` stores the answer in the route's own transaction, so it is committed with
  what the route wrote, or not at all;
- if the route fails (any 4xx or 5xx), the record is deleted: nothing was written, and
  the key may be sent again with the same or a corrected body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.auth import CredentialsDep
from app.api.params import SettingsDep
from app.api.unit_of_work import UnitOfWork, WorkDep
from app.clock import utcnow
from app.idempotency import service
from app.idempotency.service import HEADER, MAX_KEY_LENGTH, Answer, Started

log = logging.getLogger("pochta.api")

REPLAYED = "Idempotent-Replayed"

Model = TypeVar("Model", bound=BaseModel)


class Replay(Exception):
    """The request was answered before: that answer is sent again."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("replayed")
        self.answer = answer


class Idempotency:
    """The route's Idempotency-Key, if it came with one."""

    def __init__(self, work: UnitOfWork, started: Started | None) -> None:
        self._work = work
        self._started = started
        self.kept = started is None

    def keep(self, answer: Model, *, status: int, location: str | None = None) -> Model:
        """Store the route's answer for repeats of this request; return it unchanged."""
        if self._started is not None:
            body = answer.model_dump_json(by_alias=True).encode()
            service.finish(
                self._work.session, started=self._started, answer=Answer(status, body, location)
            )
            self.kept = True
        return answer


async def _raw_body(request: Request) -> bytes:
    # FastAPI has already read the body to parse it; this is its cached copy.
    return await request.body()


async def idempotency(
    request: Request,
    work: WorkDep,
    credentials: CredentialsDep,
    settings: SettingsDep,
    body: Annotated[bytes, Depends(_raw_body)],
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            description="Repeat the request safely: the same key and body get the first "
            f"answer again, with `{REPLAYED}: true`, for POCHTA_IDEMPOTENCY_TTL_SECONDS.",
        ),
    ] = None,
) -> AsyncIterator[Idempotency]:
    """Start the request's idempotency record, or raise what to answer instead."""
    if key is None:
        yield Idempotency(work, None)
        return
    fingerprint = service.fingerprint(request.method, request.url.path, body)
    ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
    # Committed before the route runs, so a concurrent repeat finds it and gets 409.
    outcome = await work.run(
        lambda: service.begin(
            work.session,
            api_key_id=credentials.caller(work.session).key_id,
            key=key,
            request_hash=fingerprint,
            now=utcnow(),
            ttl=ttl,
        )
    )
    if isinstance(outcome, Answer):
        raise Replay(outcome)
    idem = Idempotency(work, outcome)
    try:
        yield idem
    except BaseException:
        await _forget(work, outcome)
        raise
    if not idem.kept:
        await _forget(work, outcome)
        raise RuntimeError("a route took an Idempotency-Key but did not keep() its answer")


async def _forget(work: UnitOfWork, started: Started) -> None:
    try:
        await work.run(lambda: service.forget(work.session, started=started))
    except Exception:
        # The database is away: the record is taken over after IN_FLIGHT_SECONDS.
        log.warning("could not release an Idempotency-Key", exc_info=True)


def replay_response(answer: Answer) -> Response:
    headers = {REPLAYED: "true"}
    if answer.location is not None:
        headers["Location"] = answer.location
    return Response(
        answer.body,
        status_code=answer.status_code,
        media_type="application/json",
        headers=headers,
    )


def install(app: FastAPI) -> None:
    """Answer a repeated request with its stored answer."""

    @app.exception_handler(Replay)
    async def _replay(_: Request, replay: Replay) -> Response:
        return replay_response(replay.answer)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency, scope="function")]
