"""The /v1/messages routes: validate, call one service function, return a schema."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import CallerDep, JsonBody, SettingsDep, WorkDep
from app.messages import batch as batch_service
from app.messages import service
from app.messages.schemas import BatchResults, MessageOut, SubmitBatch, SubmitMessage
from app.messages.views import batch_item_out, message_out
from app.orm import utcnow
from worker.dispatch import publish_or_release

router = APIRouter(prefix="/v1/messages", tags=["messages"])


@router.post("", status_code=202, dependencies=[JsonBody])
def submit_message(
    submit: SubmitMessage,
    response: Response,
    work: WorkDep,
    caller: CallerDep,
    settings: SettingsDep,
) -> MessageOut:
    """Accept one email: stored before the answer, queued right after the commit."""
    message = service.submit_message(
        work.session, caller=caller, submit=submit, settings=settings, now=utcnow()
    )
    if message.status == "queued":
        work.after_commit(lambda: publish_or_release([message.id]))
    response.headers["Location"] = f"/v1/messages/{message.id}"
    return message_out(message)


@router.post("/batch", dependencies=[JsonBody])
def submit_batch(
    batch: SubmitBatch, work: WorkDep, caller: CallerDep, settings: SettingsDep
) -> BatchResults:
    """Accept up to 500 emails: each item stands alone; one commit, one doorbell."""
    outcomes = batch_service.submit_batch(
        work.session, caller=caller, items=batch.messages, settings=settings, now=utcnow()
    )
    due = [o.message.id for o in outcomes if o.message and o.message.status == "queued"]
    if due:
        work.after_commit(lambda: publish_or_release(due, chunk=len(due)))
    return BatchResults(results=[batch_item_out(outcome) for outcome in outcomes])


@router.get("/{message_id}")
def get_message(message_id: str, work: WorkDep, caller: CallerDep) -> MessageOut:
    """The message, each recipient's status and every attempt with the relay's reply."""
    return message_out(service.get_message(work.session, caller=caller, message_id=message_id))


@router.get("/{message_id}/raw", response_class=Response)
def get_raw(message_id: str, work: WorkDep, caller: CallerDep) -> Response:
    """The exact RFC 5322 bytes that are (or were) sent."""
    raw = service.get_raw(work.session, caller=caller, message_id=message_id)
    return Response(raw, media_type="message/rfc822")


@router.post("/{message_id}/cancel")
def cancel_message(message_id: str, work: WorkDep, caller: CallerDep) -> MessageOut:
    """Stop a scheduled, queued or deferred message; 409 once it is sending or finished."""
    message = service.cancel_message(
        work.session, caller=caller, message_id=message_id, now=utcnow()
    )
    return message_out(message)
