"""The /v1/messages routes: validate, call one service function, return a schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.auth import AuthenticatedRoute, CredentialsDep
from app.api.idempotency import IdempotencyDep
from app.api.metrics import count_accepted
from app.api.openapi import LOCATION, problems
from app.api.params import JsonBody, MessageIdDep, SettingsDep
from app.api.unit_of_work import WorkDep
from app.clock import utcnow
from app.messages import batch as batch_service
from app.messages import listing, service
from app.messages.schemas import (
    BatchResults,
    ListQuery,
    MessageOut,
    MessagePage,
    SubmitBatch,
    SubmitMessage,
)
from app.messages.serializers import batch_item_out, message_out
from app.messages.suppressed import suppressed_count
from app.outbox.doorbell import doorbell
from app.suppressions.metrics import count_refused

router = APIRouter(prefix="/v1/messages", tags=["messages"], route_class=AuthenticatedRoute)


@router.post(
    "",
    status_code=202,
    dependencies=[JsonBody],
    responses={202: {"headers": LOCATION}, **problems(400, 401, 409, 413, 415, 422, 503)},
)
async def submit_message(
    submit: SubmitMessage,
    response: Response,
    work: WorkDep,
    credentials: CredentialsDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
) -> MessageOut:
    """Accept one email: stored before the answer, queued right after the commit."""

    def accept() -> MessageOut:
        message = service.submit_message(
            work.session,
            caller=credentials.caller(work.session),
            submit=submit,
            settings=settings,
            now=utcnow(),
        )
        due = service.due_now([message])
        if due:
            work.after_commit(lambda: doorbell.ring(due))
        work.after_commit(count_accepted)
        refused = suppressed_count([message])
        work.after_commit(lambda: count_refused(refused))
        location = f"/v1/messages/{message.id}"
        response.headers["Location"] = location
        return idempotency.keep(message_out(message), status=202, location=location)

    return await work.run(accept)


@router.post(
    "/batch", dependencies=[JsonBody], responses=problems(400, 401, 409, 413, 415, 422, 503)
)
async def submit_batch(
    batch: SubmitBatch,
    work: WorkDep,
    credentials: CredentialsDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
) -> BatchResults:
    """Accept up to 500 emails: each item stands alone; one commit, one doorbell."""

    def accept() -> BatchResults:
        outcomes = batch_service.submit_batch(
            work.session,
            caller=credentials.caller(work.session),
            items=batch.messages,
            settings=settings,
            now=utcnow(),
        )
        due = service.due_now(o.message for o in outcomes if o.message)
        accepted = sum(1 for o in outcomes if o.message)
        work.after_commit(lambda: count_accepted(accepted))
        refused = suppressed_count([o.message for o in outcomes if o.message])
        work.after_commit(lambda: count_refused(refused))
        if due:
            work.after_commit(lambda: doorbell.ring(due))
        results = BatchResults(results=[batch_item_out(outcome) for outcome in outcomes])
        return idempotency.keep(results, status=200)

    return await work.run(accept)


@router.get("", responses=problems(401, 422, 503))
async def list_messages(
    query: Annotated[ListQuery, Query()], work: WorkDep, credentials: CredentialsDep
) -> MessagePage:
    """The tenant's messages, newest first; `next_cursor` (with the same filters) pages on."""

    def read() -> MessagePage:
        page = listing.list_messages(
            work.session, caller=credentials.caller(work.session), query=query
        )
        data = [message_out(m) for m in page.messages]
        return MessagePage(data=data, next_cursor=page.next_cursor)

    return await work.run(read)


@router.get("/{message_id}", responses=problems(401, 404, 503))
async def get_message(
    message_id: MessageIdDep, work: WorkDep, credentials: CredentialsDep
) -> MessageOut:
    """The message, each recipient's status and every attempt with the relay's reply."""
    return await work.run(
        lambda: message_out(
            service.get_message(
                work.session, caller=credentials.caller(work.session), message_id=message_id
            )
        )
    )


@router.get(
    "/{message_id}/raw",
    response_class=Response,
    responses={
        200: {
            "content": {
                "message/rfc822": {
                    "schema": {"type": "string"},
                    "example": "From: =?utf-8?b?0JLQsNGB0Y8=?= <vasiapupkin@ya.ru>\r\n"
                    "To: billy@example.org\r\nSubject: Hello Billy\r\n...\r\n\r\nplain body\r\n",
                }
            }
        },
        **problems(401, 404, 503),
    },
)
async def get_raw(message_id: MessageIdDep, work: WorkDep, credentials: CredentialsDep) -> Response:
    """The exact RFC 5322 bytes that are (or were) sent."""
    raw = await work.run(
        lambda: service.get_raw(
            work.session, caller=credentials.caller(work.session), message_id=message_id
        )
    )
    return Response(raw, media_type="message/rfc822")


@router.post("/{message_id}/cancel", responses=problems(401, 404, 409, 503))
async def cancel_message(
    message_id: MessageIdDep, work: WorkDep, credentials: CredentialsDep
) -> MessageOut:
    """Stop a scheduled, queued or deferred message; 409 once it is sending or finished."""
    return await work.run(
        lambda: message_out(
            service.cancel_message(
                work.session,
                caller=credentials.caller(work.session),
                message_id=message_id,
                now=utcnow(),
            )
        )
    )
