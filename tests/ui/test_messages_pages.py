"""The messages pages in headless Chromium: the list, a message, its transcript, cancel."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select, update

from app import db
from app.keys.models import KeyScope
from app.messages.models import Attempt
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


def test_a_sent_message_turns_sent_in_the_list_without_a_reload(
    running: Running, watched: Watched
) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    sign_in(page, key)
    # Scheduled a few seconds ahead: in flight when the list is shown, sent soon after.
    message_id = submit(
        running.url,
        key,
        to=["Billy G <watch@example.org>"],
        subject="Hello Billy",
        send_at=in_seconds(5),
    )
    page.goto("/ui/messages")
    row = page.locator(f"tr[data-message-id='{message_id}']")
    expect(row.locator(".badge")).to_have_text("scheduled")
    shoot(page, "messages-in-flight")
    page.evaluate("window.notReloaded = true")

    expect(row.locator(".badge")).to_have_text("sent", timeout=SLOW)
    assert page.evaluate("window.notReloaded") is True, "the page was reloaded"
    expect(row.locator(".badge")).to_have_class(re.compile(r"\bs-sent\b"))
    shoot(page, "messages")

    page.fill("input[name=recipient]", "watch@example.org")
    page.click(".filters button[type=submit]")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.click(f"a[href='/ui/messages/{message_id}']")
    expect(page.locator("h1.subject")).to_have_text("Hello Billy")
    expect(page.locator(".recipients")).to_contain_text("watch@example.org")
    expect(page.locator(".recipients")).to_contain_text("250")
    expect(page.locator(".events .event")).to_have_text(["message.sent"])
    shoot(page, "message-sent")

    assert all(url.startswith(running.url) for url in watched.requests), watched.requests
    assert not [e for e in watched.console_errors if "Content Security Policy" in e]


def test_a_greylisted_message_shows_both_attempts(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    running.relay.script_rcpt("grey@example.org", "451 4.7.1 Greylisted, try later")
    message_id = submit(running.url, key, to=["grey@example.org"], subject="Greylisted")
    with running.stack.client(key) as client:
        running.stack.wait_for_status(client, message_id, {"sent", "failed"})
    sign_in(page, key)
    page.goto(f"/ui/messages/{message_id}")
    attempts = page.locator("article.attempt")
    expect(attempts).to_have_count(2)
    first, second = attempts.nth(0), attempts.nth(1)
    expect(first.locator(".outcome")).to_have_text("deferred")
    expect(first.locator(".result")).to_contain_text("451 4.7.1 Greylisted, try later")
    expect(first.locator(".result .code-temp")).to_have_text("451")
    expect(second.locator(".outcome")).to_have_text("sent")
    # The default keeps transcripts of failures only (POCHTA_TRANSCRIPTS=failures).
    expect(second.locator(".no-transcript")).to_have_text("no transcript kept")
    shoot(page, "message-greylisted")


def test_the_greylisted_attempt_shows_its_smtp_dialogue(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    running.relay.script_rcpt("dialogue@example.org", "451 4.7.1 Greylisted, try later")
    message_id = submit(running.url, key, to=["dialogue@example.org"], subject="Dialogue")
    with running.stack.client(key) as client:
        running.stack.wait_for_status(client, message_id, {"sent", "failed"})
    sign_in(page, key)
    page.goto(f"/ui/messages/{message_id}")
    terminal = page.locator("#attempt-1 .terminal")
    expect(terminal.locator(".line.out")).to_contain_text(["RCPT TO:<dialogue@example.org>"])
    expect(terminal.locator(".line.in .code-temp")).to_contain_text(["451"])
    shoot(page, "message-transcript")


def test_a_transcript_reads_like_a_terminal_session(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    running.relay.script_rcpt("nobody@example.org", "550 5.1.1 No such user here")
    message_id = submit(running.url, key, to=["nobody@example.org"], subject="Refused")
    with running.stack.client(key) as client:
        running.stack.wait_for_status(client, message_id, {"failed"})
    # The dialogue as the worker keeps it (SPEC §11), a reply with markup in it included.
    dialogue = [
        {"at_ms": 0, "dir": "in", "line": "220 relay.test ESMTP"},
        {"at_ms": 3, "dir": "out", "line": "EHLO pochta.test"},
        {"at_ms": 5, "dir": "in", "line": "250 relay.test"},
        {"at_ms": 6, "dir": "out", "line": "MAIL FROM:<vasiapupkin@ya.ru>"},
        {"at_ms": 7, "dir": "in", "line": "250 2.1.0 OK"},
        {"at_ms": 8, "dir": "out", "line": "RCPT TO:<nobody@example.org>"},
        {"at_ms": 9, "dir": "in", "line": "550 5.1.1 <script>alert(3)</script> no such user"},
    ]
    with db.session_scope() as session:
        session.execute(
            update(Attempt).where(Attempt.message_pk == message_id).values(transcript=dialogue)
        )
        assert session.scalar(select(Attempt.transcript).where(Attempt.message_pk == message_id))
    sign_in(page, key)
    page.goto(f"/ui/messages/{message_id}")
    terminal = page.locator("#attempt-1 .terminal")
    expect(terminal.locator(".line")).to_have_count(len(dialogue))
    expect(terminal.locator(".line.out .text")).to_have_text(
        ["EHLO pochta.test", "MAIL FROM:<vasiapupkin@ya.ru>", "RCPT TO:<nobody@example.org>"]
    )
    expect(terminal.locator(".line.in .code-perm")).to_have_text(
        ["550 5.1.1 <script>alert(3)</script> no such user"]
    )
    expect(terminal.locator(".line.in .code-ok")).to_have_count(3)
    assert watched.dialogs == []
    shoot(page, "message-failed-transcript")


def test_a_scheduled_message_is_canceled_from_its_page(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    message_id = submit(
        running.url, key, to=["later@example.org"], subject="Later", send_at=in_seconds(3600)
    )
    sign_in(page, key)
    page.goto(f"/ui/messages/{message_id}")
    expect(page.locator(".heading .badge")).to_have_text("scheduled")
    page.click("text=Cancel this message")
    expect(page.locator(".notice")).to_contain_text("canceled")
    expect(page.locator(".heading .badge")).to_have_text("canceled")
    expect(page.locator("text=Cancel this message")).to_have_count(0)
    expect(page.locator(".events .event")).to_have_text(["message.canceled"])
    shoot(page, "message-canceled")
    assert api_get(running.url, key, f"/v1/messages/{message_id}")["status"] == "canceled"

    page.click("nav >> text=Events")
    page.select_option("select[name=type]", "message.canceled")
    page.click(".filters button[type=submit]")
    row = page.locator(f"tr:has(a[href='/ui/messages/{message_id}'])")
    expect(row.locator(".event")).to_have_text("message.canceled")
    row.locator("summary").click()
    expect(row.locator("pre.json")).to_contain_text('"status": "canceled"')
    shoot(page, "events")


def test_a_script_subject_shows_as_text_and_never_runs(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full)
    hostile = "<script>alert(1)</script>"
    message_id = submit(
        running.url,
        key,
        **{"from": "<img src=x onerror=alert(2)> <evil@example.org>"},
        to=["xss@example.org"],
        subject=hostile,
        metadata={"note": "<b onmouseover=alert(4)>hover</b>"},
        send_at=in_seconds(3600),
    )
    sign_in(page, key)
    expect(page.locator(f"a[href='/ui/messages/{message_id}']")).to_have_text(hostile)
    page.goto(f"/ui/messages/{message_id}")
    expect(page.locator("h1.subject")).to_have_text(hostile)
    page.hover("text=hover")
    page.goto(f"/ui/messages/{message_id}/raw")
    expect(page.locator("pre.source")).to_contain_text(f"Subject: {hostile}")
    shoot(page, "message-raw")
    assert watched.dialogs == []


def test_the_pages_fit_a_narrow_phone(running: Running, watched: Watched) -> None:
    page = watched.page
    page.set_viewport_size({"width": 360, "height": 740})
    key = make_scoped_key(KeyScope.full)
    message_id = submit(
        running.url,
        key,
        to=["narrow-screen-recipient@example.org"],
        subject="A subject long enough to need wrapping on a small phone screen",
        send_at=in_seconds(3600),
    )
    sign_in(page, key)
    for path, name in (
        ("/ui/messages", "messages-360"),
        (f"/ui/messages/{message_id}", "message-360"),
        ("/ui/events", "events-360"),
        ("/ui/webhooks", "webhooks-360"),
        ("/ui/suppressions", "suppressions-360"),
        ("/ui/relays", "relays-360"),
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width} px wide at 360"
        shoot(page, name)


def test_relative_times_are_recounted_as_they_age(running: Running, watched: Watched) -> None:
    page = watched.page
    key = make_scoped_key(KeyScope.full, tenant="clocks")
    submit(running.url, key, to=["clock@example.org"], subject="Clock", send_at=in_seconds(3600))
    sign_in(page, key)
    created = page.locator("tbody tr td[data-label=Created] time")
    expect(created).to_have_text("just now")
    # Without a reload, the same cell says how old the message has become.
    expect(created).to_have_text(re.compile(r"^\d+ s ago$"), timeout=SLOW)
