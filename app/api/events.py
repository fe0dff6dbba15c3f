"""The /v1/events routes: validate, call one service function, return a schema."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.api.auth import AuthenticatedRoute, CredentialsDep
from app.api.openapi import problems
from app.api.unit_of_work import WorkDep
from app.errors import NotFound
from app.events import service
from app.events.schemas import EventOut, EventPage, EventQuery, event_out

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=AuthenticatedRoute)

# Printable ASCII, as every id Pochta hands out: anything else cannot name an event.
_EVENT_ID = re.compile(r"[!-~]{1,64}")


async def _event_id(
    event_id: Annotated[
        str,
        Path(description="The event's id.", examples=["evt_01jdq3z8x0d4v6m2k7r9t5w1ya"]),
    ],
) -> str:
    """The id in the path; 404 without a query for what cannot be an id."""
    if not _EVENT_ID.fullmatch(event_id):
        raise NotFound("no event with that id")
    return event_id


EventIdDep = Annotated[str, Depends(_event_id)]


@router.get("", responses=problems(401, 422, 503))
async def list_events(
    query: Annotated[EventQuery, Query()], work: WorkDep, credentials: CredentialsDep
) -> EventPage:
    """The tenant's events, newest first; `next_cursor` (with the same filters) pages on."""

    def read() -> EventPage:
        page = service.list_events(
            work.session, caller=credentials.caller(work.session), query=query
        )
        return EventPage(data=[event_out(e) for e in page.events], next_cursor=page.next_cursor)

    return await work.run(read)


@router.get("/{event_id}", responses=problems(401, 404, 503))
async def get_event(event_id: EventIdDep, work: WorkDep, credentials: CredentialsDep) -> EventOut:
    """One event: what changed, when, and the message as it was right after."""
    return await work.run(
        lambda: event_out(
            service.get_event(
                work.session, caller=credentials.caller(work.session), event_id=event_id
            )
        )
    )
