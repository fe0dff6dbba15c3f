"""The webhooks pages: the endpoints, one endpoint's deliveries, replay, on and off."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from app.clock import utcnow
from app.config import get_settings
from app.db import session_scope
from app.errors import Conflict, InvalidFields, validation_problem
from app.events.types import EventType
from app.ui.forms import as_utc, checked_id, field_errors, read_query
from app.ui.render import render
from app.ui.viewer import Viewer, ViewerDep
from app.webhooks import service
from app.webhooks.models import Delivery, DeliveryStatus
from app.webhooks.schemas import DeliveryQuery, ReplayRequest, WebhookCreate, WebhookPatch

router = APIRouter(prefix="/webhooks")

NOTICES = {
    "deleted": "The endpoint is deleted: nothing more is sent to it.",
    "enabled": "The endpoint is on again; what it missed comes only by replay.",
    "disabled": "The endpoint is off: nothing more is sent to it until it is turned on.",
    "disabled-already": "The endpoint is disabled: turn it on before replaying.",
}


def webhook_id_param(webhook_id: Annotated[str, Path()]) -> str:
    return checked_id(webhook_id, "webhook")


WebhookId = Annotated[str, Depends(webhook_id_param)]


def _list_page(
    viewer: Viewer,
    *,
    errors: list[str] | None = None,
    form: dict[str, object] | None = None,
    notice: str | None = None,
) -> Response:
    with session_scope() as db:
        webhooks = service.list_webhooks(db, caller=viewer.caller)
        return render(
            "webhooks.html",
            status_code=422 if errors else 200,
            viewer=viewer,
            webhooks=webhooks,
            types=[t.value for t in EventType],
            errors=errors or [],
            notice=notice,
            form=form or {"url": "", "description": "", "events": []},
            now=utcnow(),
        )


@router.get("")
def webhooks_page(viewer: ViewerDep, notice: str = "") -> Response:
    """The tenant's endpoints."""
    return _list_page(viewer, notice=NOTICES.get(notice))


@router.post("")
def create(
    viewer: ViewerDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
    url: Annotated[str, Form(max_length=4096)] = "",
    description: Annotated[str, Form(max_length=1000)] = "",
    events: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """A new endpoint; its secret is shown on this answer only, as POST /v1/webhooks does."""
    viewer.authorize_change(csrf)
    form: dict[str, object] = {"url": url, "description": description, "events": events or []}
    try:
        body = WebhookCreate(url=url.strip(), description=description, events=events or [])
    except ValidationError as error:
        return _list_page(
            viewer, errors=field_errors(validation_problem(error.errors())), form=form
        )
    try:
        with session_scope() as db:
            made = service.create_webhook(
                db, caller=viewer.caller, create=body, settings=get_settings(), now=utcnow()
            )
    except InvalidFields as error:
        return _list_page(viewer, errors=field_errors(error), form=form)
    viewer.audit("webhook created", webhook_id=made.webhook.id)
    # Shown once, here, after the commit; never put in a URL or a cookie.
    return _webhook_page(viewer, made.webhook.id, secret=made.secret)


def _webhook_page(
    viewer: Viewer,
    webhook_id: str,
    *,
    filters: dict[str, str] | None = None,
    cursor: str = "",
    notice: str | None = None,
    secret: str | None = None,
) -> Response:
    filters = filters or {"status": "", "event_id": ""}
    query, errors = read_query(DeliveryQuery, filters, cursor)
    with session_scope() as db:
        webhook = service.get_webhook(db, caller=viewer.caller, webhook_id=webhook_id)
        deliveries: list[Delivery] = []
        next_url = None
        if query is not None:
            try:
                deliveries, next_cursor = service.list_deliveries(
                    db, caller=viewer.caller, webhook_id=webhook_id, query=query
                )
            except InvalidFields as error:
                errors = field_errors(error)
            else:
                if next_cursor:
                    kept = {k: v for k, v in filters.items() if v}
                    next_url = f"/ui/webhooks/{webhook_id}?" + urlencode(
                        {**kept, "cursor": next_cursor}
                    )
        return render(
            "webhook.html",
            status_code=422 if errors else 200,
            viewer=viewer,
            webhook=webhook,
            secret=secret,
            deliveries=deliveries,
            filters=filters,
            statuses=[s.value for s in DeliveryStatus],
            errors=errors,
            notice=notice,
            next_url=next_url,
            paged=bool(cursor),
            now=utcnow(),
        )


@router.get("/{webhook_id}")
def webhook_page(
    webhook_id: WebhookId,
    viewer: ViewerDep,
    status: str = "",
    event_id: str = "",
    cursor: str = "",
    notice: str = "",
    queued: int | None = None,
) -> Response:
    """One endpoint: its settings and every request made to it, newest first."""
    said = NOTICES.get(notice)
    if notice == "replayed" and queued is not None:
        said = f"{queued} event{'s' if queued != 1 else ''} queued to be sent again."
    filters = {"status": status.strip(), "event_id": event_id.strip()}
    return _webhook_page(viewer, webhook_id, filters=filters, cursor=cursor, notice=said)


@router.post("/{webhook_id}/replay")
def replay(
    webhook_id: WebhookId,
    viewer: ViewerDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
    event_id: Annotated[str, Form(max_length=64)] = "",
    since: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Send one event (or every one since a moment) again, as POST …/replay does."""
    viewer.authorize_change(csrf)
    try:
        request = ReplayRequest.model_validate(
            {
                "event_ids": [event_id.strip()] if event_id.strip() else None,
                "since": as_utc(since.strip()) if since.strip() else None,
            }
        )
    except ValidationError as error:
        problem = validation_problem(error.errors())
        return _webhook_page(viewer, webhook_id, notice="; ".join(field_errors(problem)))
    target = f"/ui/webhooks/{webhook_id}"
    try:
        with session_scope() as db:
            queued = service.replay(
                db, caller=viewer.caller, webhook_id=webhook_id, request=request, now=utcnow()
            )
    except Conflict:
        return RedirectResponse(f"{target}?notice=disabled-already", status_code=303)
    viewer.audit("webhook replay", webhook_id=webhook_id, queued=queued)
    return RedirectResponse(f"{target}?notice=replayed&queued={queued}", status_code=303)


@router.post("/{webhook_id}/enabled")
def set_enabled(
    webhook_id: WebhookId,
    viewer: ViewerDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
    enabled: Annotated[bool, Form()] = False,
) -> Response:
    """Turn the endpoint on or off, as PATCH {"enabled": …} does."""
    viewer.authorize_change(csrf)
    with session_scope() as db:
        service.update_webhook(
            db,
            caller=viewer.caller,
            webhook_id=webhook_id,
            patch=WebhookPatch(enabled=enabled),
            settings=get_settings(),
            now=utcnow(),
        )
    notice = "enabled" if enabled else "disabled"
    viewer.audit(f"webhook {notice}", webhook_id=webhook_id)
    return RedirectResponse(f"/ui/webhooks/{webhook_id}?notice={notice}", status_code=303)


@router.post("/{webhook_id}/rotate-secret")
def rotate_secret(
    webhook_id: WebhookId, viewer: ViewerDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    """A new secret, shown this once; the old one keeps signing beside it for the overlap."""
    viewer.authorize_change(csrf)
    with session_scope() as db:
        rotated = service.rotate_secret(
            db, caller=viewer.caller, webhook_id=webhook_id, settings=get_settings(), now=utcnow()
        )
    viewer.audit("webhook secret rotated", webhook_id=webhook_id)
    return _webhook_page(viewer, webhook_id, secret=rotated.secret)


@router.post("/{webhook_id}/delete")
def delete(
    webhook_id: WebhookId, viewer: ViewerDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    """Nothing more is sent to the endpoint, as DELETE /v1/webhooks/{id} does."""
    viewer.authorize_change(csrf)
    with session_scope() as db:
        service.delete_webhook(db, caller=viewer.caller, webhook_id=webhook_id)
    viewer.audit("webhook deleted", webhook_id=webhook_id)
    return RedirectResponse("/ui/webhooks?notice=deleted", status_code=303)
