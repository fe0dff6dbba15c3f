"""Who may do what in the dashboard (Chromium): sign-out, revoked keys, CSRF, read keys."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from app import db
from app.keys.models import KeyScope
from app.keys.service import authenticate, revoke_key
from tests.ui.conftest import Running, Watched
from tests.ui.helpers import (
    api_get,
    in_seconds,
    make_scoped_key,
    shoot,
    sign_in,
    submit,
)

# The browser waits this long for what the worker does; a slow machine still gets there.
SLOW = 30_000


def test_signing_out_ends_the_session(running: Running, watched: Watched) -> None:
    page = watched.page
    sign_in(page, make_scoped_key(KeyScope.full))
    page.click("text=Sign out")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/messages")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    expect(page.locator("#key")).to_be_visible()
    shoot(page, "login")


def test_a_revoked_key_ends_its_dashboard_session(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    sign_in(page, key)
    with db.session_scope() as session:
        key_id = authenticate(session, secret=key).key_id
        revoke_key(session, key_id=key_id)
    page.goto("/ui/messages")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_a_post_without_the_csrf_token_is_refused(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    message_id = submit(
        running.url, key, to=["csrf@example.org"], subject="Kept", send_at=in_seconds(3600)
    )
    sign_in(page, key)
    forms: list[dict[str, str | float | bool]] = [{}, {"csrf": "not-the-token"}]
    for form in forms:
        refused = page.request.post(f"/ui/messages/{message_id}/cancel", form=form)
        assert refused.status == 403
        assert "CSRF" in refused.text()
    assert api_get(running.url, key, f"/v1/messages/{message_id}")["status"] == "scheduled"


def test_a_read_key_is_offered_no_change_and_every_change_is_refused(
    running: Running, watched: Watched
) -> None:
    page = watched.page
    full = make_scoped_key(KeyScope.full, tenant="lookers")
    message_id = submit(
        running.url, full, to=["look@example.org"], subject="Look", send_at=in_seconds(3600)
    )
    made = httpx.post(
        f"{running.url}/v1/webhooks",
        json={"url": "http://127.0.0.1:9/look"},
        headers={"Authorization": f"Bearer {full}"},
    )
    assert made.status_code == 201, made.text
    webhook_id = made.json()["id"]
    sign_in(page, make_scoped_key(KeyScope.read, tenant="lookers"))
    expect(page.locator(".scope")).to_have_text("read")
    for path in (
        "/ui/messages",
        f"/ui/messages/{message_id}",
        "/ui/events",
        "/ui/webhooks",
        f"/ui/webhooks/{webhook_id}",
        "/ui/suppressions",
    ):
        page.goto(path)
        # Signing out is the one form a read key is offered.
        expect(page.locator("form[method=post]")).to_have_count(1)
        expect(page.locator("form[method=post]")).to_have_attribute("action", "/ui/logout")
        if path == f"/ui/messages/{message_id}":
            expect(page.locator("h1.subject")).to_have_text("Look")
            shoot(page, "message-read-key")
    token = page.locator("form[action='/ui/logout'] input[name=csrf]").get_attribute("value")
    assert token
    for path, form in (
        (f"/ui/messages/{message_id}/cancel", {}),
        ("/ui/webhooks", {"url": "http://127.0.0.1:9/other"}),
        (f"/ui/webhooks/{webhook_id}/replay", {"since": "2026-01-01T00:00"}),
        (f"/ui/webhooks/{webhook_id}/enabled", {"enabled": "false"}),
        (f"/ui/webhooks/{webhook_id}/rotate-secret", {}),
        (f"/ui/webhooks/{webhook_id}/delete", {}),
        ("/ui/suppressions", {"email": "x@example.org"}),
        ("/ui/suppressions/remove", {"email": "x@example.org"}),
    ):
        refused = page.request.post(path, form={"csrf": token, **form})
        assert refused.status == 403, path
    assert api_get(running.url, full, f"/v1/messages/{message_id}")["status"] == "scheduled"
    hooks = api_get(running.url, full, "/v1/webhooks")["data"]
    assert [(h["id"], h["status"]) for h in hooks] == [(webhook_id, "enabled")]
