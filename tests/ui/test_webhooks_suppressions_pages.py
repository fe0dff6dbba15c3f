"""The webhooks and suppressions pages in headless Chromium."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect
from sqlalchemy import select

from app import db
from app.keys.models import KeyScope
from app.webhooks.models import PendingDelivery
from tests.support.checks import wait_until
from tests.ui.conftest import Running, Watched
from tests.ui.helpers import (
    api_get,
    make_scoped_key,
    shoot,
    sign_in,
    submit,
)

# The browser waits this long for what the worker does; a slow machine still gets there.
SLOW = 30_000


def test_an_address_is_suppressed_and_removed_from_the_page(
    running: Running, watched: Watched
) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    sign_in(page, key)
    page.click("nav >> text=Suppressions")
    form = page.locator("form.add-suppression")
    form.locator("input[name=email]").fill("Unsub@Example.org")
    form.locator("select[name=reason]").select_option("unsubscribe")
    form.locator("input[name=note]").fill("asked by <b>phone</b>")
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("suppressed")
    row = page.locator("tr[data-email='Unsub@example.org']")
    expect(row.locator(".tag")).to_have_text("unsubscribe")
    expect(row).to_contain_text("asked by <b>phone</b>")
    shoot(page, "suppressions")
    entry = api_get(running.url, key, "/v1/suppressions/unsub@example.org")
    assert entry["reason"] == "unsubscribe"

    row.locator("button", has_text="Remove").click()
    expect(page.locator(".notice")).to_contain_text("may be sent to again")
    expect(page.locator("tr[data-email='Unsub@example.org']")).to_have_count(0)
    gone = httpx.get(
        f"{running.url}/v1/suppressions/unsub@example.org",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert gone.status_code == 404


def test_a_webhook_delivery_is_replayed_from_its_page(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full, tenant="hooks")
    sign_in(page, key)
    page.click("nav >> text=Webhooks")
    form = page.locator("form.add-webhook")
    form.locator("input[name=url]").fill("http://127.0.0.1:9/pochta")
    form.locator("input[value='message.sent']").check()
    form.locator("button[type=submit]").click()
    expect(page.locator(".whsec")).to_have_text(re.compile(r"^whsec_\S{40,}$"))
    first_secret = page.locator(".whsec").inner_text()
    webhook_id = page.locator("dl.summary dd code").first.inner_text()
    shoot(page, "webhook-created")

    message_id = submit(running.url, key, to=["hooked@example.org"], subject="Hooked")
    with running.stack.client(key) as client:
        running.stack.wait_for_status(client, message_id, {"sent"})
    (event,) = api_get(running.url, key, f"/v1/events?message_id={message_id}")["data"]
    # The delivery worker makes the request (nothing listens on port 9) and logs it.
    deliveries = f"/v1/webhooks/{webhook_id}/deliveries"
    wait_until(
        lambda: bool(api_get(running.url, key, deliveries)["data"]),
        60,
        lambda: running.stack.logs(),
    )
    # The message's page shows the request under the event it carried.
    page.goto(f"/ui/messages/{message_id}")
    sent = page.locator(f"tr[data-event-id='{event['id']}'] .deliveries-of-event li").first
    expect(sent).to_contain_text("failed")
    expect(sent).to_contain_text("http://127.0.0.1:9/pochta")
    shoot(page, "message-event-deliveries")
    page.goto(f"/ui/webhooks/{webhook_id}")
    row = page.locator("table.deliveries tbody tr").first
    expect(row).to_contain_text("failed")
    row.locator("button", has_text="Replay").click()
    expect(page.locator(".notice")).to_have_text("1 event queued to be sent again.")
    shoot(page, "webhook-deliveries")
    with db.session_scope() as session:
        owed = session.scalars(
            select(PendingDelivery.event_pk).where(PendingDelivery.webhook_pk == webhook_id)
        ).all()
    assert owed == [event["id"]]

    page.click("text=Turn off")
    expect(page.locator(".heading .badge")).to_have_text("disabled")
    page.locator("table.deliveries button", has_text="Replay").first.click()
    expect(page.locator(".notice")).to_contain_text("turn it on before replaying")

    page.click("text=New secret")
    expect(page.locator(".whsec")).to_have_text(re.compile(r"^whsec_\S{40,}$"))
    assert page.locator(".whsec").inner_text() != first_secret
    expect(page.locator(".secret")).to_contain_text("the previous one keeps signing beside it")
    page.click("button:has-text('Delete')")
    expect(page.locator(".notice")).to_contain_text("deleted")
    expect(page.locator(f"tr[data-webhook-id='{webhook_id}']")).to_have_count(0)
    assert api_get(running.url, key, "/v1/webhooks")["data"] == []
