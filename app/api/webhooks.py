"""The /v1/webhooks routes: validate, call one service function, return a schema."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.api.auth import AuthenticatedRoute, CredentialsDep
from app.api.openapi import problems
from app.api.params import JsonBody, SettingsDep
from app.api.unit_of_work import WorkDep
from app.clock import utcnow
from app.errors import NotFound
from app.webhooks import service
from app.webhooks.schemas import (
    DeliveryPage,
    DeliveryQuery,
    ReplayQueued,
    ReplayRequest,
    WebhookCreate,
    WebhookList,
    WebhookOut,
    WebhookPatch,
    WebhookWithSecret,
)
from app.webhooks.serializers import delivery_out, webhook_out, webhook_with_secret

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=AuthenticatedRoute)

_WEBHOOK_ID = re.compile(r"[!-~]{1,64}")


async def webhook_id_param(
    webhook_id: Annotated[
        str,
        Path(
            description="The endpoint's id, as POST /v1/webhooks returned it.",
            examples=["wh_01jdq3z8x0d4v6m2k7r9t5w1ya"],
        ),
    ],
) -> str:
    """The id in the path; 404 without a query for what cannot be an id."""
    if not _WEBHOOK_ID.fullmatch(webhook_id):
        raise NotFound("no webhook with that id")
    return webhook_id


WebhookIdDep = Annotated[str, Depends(webhook_id_param)]


@router.post(
    "",
    status_code=201,
    dependencies=[JsonBody],
    responses=problems(400, 401, 415, 422, 503),
)
async def create_webhook(
    create: WebhookCreate,
    response: Response,
    work: WorkDep,
    credentials: CredentialsDep,
    settings: SettingsDep,
) -> WebhookWithSecret:
    """A new endpoint; the answer holds its signing secret, shown this once."""

    def act() -> WebhookWithSecret:
        made = service.create_webhook(
            work.session,
            caller=credentials.caller(work.session),
            create=create,
            settings=settings,
            now=utcnow(),
        )
        response.headers["Location"] = f"/v1/webhooks/{made.webhook.id}"
        return webhook_with_secret(made.webhook, made.secret)

    return await work.run(act)


@router.get("", responses=problems(401, 503))
async def list_webhooks(work: WorkDep, credentials: CredentialsDep) -> WebhookList:
    """The tenant's endpoints, newest first."""

    def read() -> WebhookList:
        webhooks = service.list_webhooks(work.session, caller=credentials.caller(work.session))
        return WebhookList(data=[webhook_out(w) for w in webhooks])

    return await work.run(read)


@router.get("/{webhook_id}", responses=problems(401, 404, 503))
async def get_webhook(
    webhook_id: WebhookIdDep, work: WorkDep, credentials: CredentialsDep
) -> WebhookOut:
    """One endpoint (without its secret)."""
    return await work.run(
        lambda: webhook_out(
            service.get_webhook(
                work.session, caller=credentials.caller(work.session), webhook_id=webhook_id
            )
        )
    )


@router.patch(
    "/{webhook_id}", dependencies=[JsonBody], responses=problems(400, 401, 404, 415, 422, 503)
)
async def update_webhook(
    webhook_id: WebhookIdDep,
    patch: WebhookPatch,
    work: WorkDep,
    credentials: CredentialsDep,
    settings: SettingsDep,
) -> WebhookOut:
    """Change url, events, description or enabled; the fields left out stay."""
    return await work.run(
        lambda: webhook_out(
            service.update_webhook(
                work.session,
                caller=credentials.caller(work.session),
                webhook_id=webhook_id,
                patch=patch,
                settings=settings,
                now=utcnow(),
            )
        )
    )


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 404, 503),
)
async def delete_webhook(
    webhook_id: WebhookIdDep, work: WorkDep, credentials: CredentialsDep
) -> Response:
    """The endpoint, what it was still owed and its deliveries log: nothing more is sent."""
    await work.run(
        lambda: service.delete_webhook(
            work.session, caller=credentials.caller(work.session), webhook_id=webhook_id
        )
    )
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret", responses=problems(401, 404, 503))
async def rotate_secret(
    webhook_id: WebhookIdDep, work: WorkDep, credentials: CredentialsDep, settings: SettingsDep
) -> WebhookWithSecret:
    """A new secret, shown this once; the old one signs beside it for the overlap."""

    def act() -> WebhookWithSecret:
        rotated = service.rotate_secret(
            work.session,
            caller=credentials.caller(work.session),
            webhook_id=webhook_id,
            settings=settings,
            now=utcnow(),
        )
        return webhook_with_secret(rotated.webhook, rotated.secret)

    return await work.run(act)


@router.get("/{webhook_id}/deliveries", responses=problems(401, 404, 422, 503))
async def list_deliveries(
    webhook_id: WebhookIdDep,
    query: Annotated[DeliveryQuery, Query()],
    work: WorkDep,
    credentials: CredentialsDep,
) -> DeliveryPage:
    """Every request made to the endpoint, newest first."""

    def read() -> DeliveryPage:
        deliveries, next_cursor = service.list_deliveries(
            work.session,
            caller=credentials.caller(work.session),
            webhook_id=webhook_id,
            query=query,
        )
        return DeliveryPage(data=[delivery_out(d) for d in deliveries], next_cursor=next_cursor)

    return await work.run(read)


@router.post(
    "/{webhook_id}/replay",
    status_code=202,
    dependencies=[JsonBody],
    responses=problems(400, 401, 404, 409, 415, 422, 503),
)
async def replay(
    webhook_id: WebhookIdDep, request: ReplayRequest, work: WorkDep, credentials: CredentialsDep
) -> ReplayQueued:
    """Send those events again (same webhook-id); 409 while the endpoint is disabled."""
    queued = await work.run(
        lambda: service.replay(
            work.session,
            caller=credentials.caller(work.session),
            webhook_id=webhook_id,
            request=request,
            now=utcnow(),
        )
    )
    return ReplayQueued(queued=queued)
