"""The /v1/suppressions routes: the tenant's list of addresses never sent to (SPEC §8)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.auth import AuthenticatedRoute, CredentialsDep
from app.api.openapi import problems
from app.api.params import JsonBody
from app.api.unit_of_work import WorkDep
from app.clock import utcnow
from app.suppressions import service
from app.suppressions.metrics import count_created
from app.suppressions.schemas import (
    PutSuppression,
    SuppressionOut,
    SuppressionPage,
    SuppressionQuery,
)

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"], route_class=AuthenticatedRoute)

EmailPath = Annotated[
    str,
    Path(
        max_length=320,
        description="The address; compared case-insensitively.",
        examples=["billy@example.org"],
    ),
]


@router.get("", responses=problems(401, 422, 503))
async def list_suppressions(
    query: Annotated[SuppressionQuery, Query()], work: WorkDep, credentials: CredentialsDep
) -> SuppressionPage:
    """The tenant's suppressed addresses, newest first; expired entries are not listed."""
    return await work.run(
        lambda: service.list_suppressions(
            work.session, caller=credentials.caller(work.session), query=query, now=utcnow()
        )
    )


@router.get("/{email}", responses=problems(401, 404, 422, 503))
async def get_suppression(
    email: EmailPath, work: WorkDep, credentials: CredentialsDep
) -> SuppressionOut:
    """One address's entry; 404 if it is not (or no longer) suppressed."""
    return await work.run(
        lambda: service.get_suppression(
            work.session, caller=credentials.caller(work.session), email=email, now=utcnow()
        )
    )


@router.put(
    "/{email}",
    dependencies=[JsonBody],
    responses={201: {"model": SuppressionOut}, **problems(400, 401, 415, 422, 503)},
)
async def put_suppression(
    email: EmailPath,
    body: PutSuppression,
    response: Response,
    work: WorkDep,
    credentials: CredentialsDep,
) -> SuppressionOut:
    """Never send to this address again: 201 when added, 200 when it was there already."""

    def put() -> SuppressionOut:
        entry, created = service.put_suppression(
            work.session,
            caller=credentials.caller(work.session),
            email=email,
            body=body,
            now=utcnow(),
        )
        response.status_code = 201 if created else 200
        if created:
            work.after_commit(lambda: count_created([entry.reason]))
        return entry

    return await work.run(put)


@router.delete(
    "/{email}", status_code=204, response_class=Response, responses=problems(401, 404, 422, 503)
)
async def delete_suppression(email: EmailPath, work: WorkDep, credentials: CredentialsDep) -> None:
    """The address may be sent to again."""
    await work.run(
        lambda: service.delete_suppression(
            work.session, caller=credentials.caller(work.session), email=email, now=utcnow()
        )
    )
