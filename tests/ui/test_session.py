"""The dashboard's session, CSRF and headers, in-process (browsers: test_dashboard.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app import db
from app.keys.models import ApiKey, KeyScope
from app.keys.service import create_key
from tests.conftest import Env, make_key

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def ui(sqlite_env: Env) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(
        create_app(), base_url="https://testserver", raise_server_exceptions=False
    ) as client:
        yield client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


def sign_in(ui: TestClient, key: str) -> str:
    """Sign in; the CSRF token of the signed-in session's forms."""
    form = ui.get("/ui/login")
    answer = ui.post(
        "/ui/login",
        data={"key": key, "csrf": csrf_of(form.text), "next": "/ui/messages"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(ui.get("/ui/messages").text)


def test_the_session_cookie_is_signed_httponly_strict_and_secure_over_https(
    ui: TestClient,
) -> None:
    form = ui.get("/ui/login")
    answer = ui.post(
        "/ui/login",
        data={"key": make_key(), "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "pochta_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" in cookie
    assert "Path=/ui" in cookie
    # The cookie holds the key's id, never the key.
    assert "pk_" not in cookie


def test_a_page_without_a_session_goes_to_sign_in(ui: TestClient) -> None:
    answer = ui.get("/ui/messages?status=sent", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=/ui/messages%3Fstatus%3Dsent"


def test_an_altered_cookie_is_no_session(ui: TestClient) -> None:
    sign_in(ui, make_key())
    value = ui.cookies["pochta_session"]
    ui.cookies.clear()
    ui.cookies.set(
        "pochta_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), path="/ui"
    )
    assert ui.get("/ui/messages", follow_redirects=False).status_code == 303


def test_sign_in_without_the_forms_token_is_refused(ui: TestClient) -> None:
    ui.get("/ui/login")
    answer = ui.post("/ui/login", data={"key": make_key()}, follow_redirects=False)
    assert answer.status_code == 403
    assert "stale" in answer.text


def test_a_wrong_key_is_told_on_the_form(ui: TestClient) -> None:
    form = ui.get("/ui/login")
    answer = ui.post("/ui/login", data={"key": "pk_nope", "csrf": csrf_of(form.text)})
    assert answer.status_code == 401
    assert "unknown or revoked" in answer.text


def test_every_page_forbids_inline_script_and_other_origins(ui: TestClient) -> None:
    sign_in(ui, make_key())
    for path in ("/ui/login", "/ui/messages", "/ui/static/pochta.css", "/ui/nothing-here"):
        answer = ui.get(path, follow_redirects=False)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
    assert ui.get("/ui/nothing-here").status_code == 404


def test_sign_in_goes_back_only_to_a_page_of_the_dashboard(ui: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/ui/", "/ui/../v1/messages"):
        form = ui.get("/ui/login")
        ui.cookies.clear()
        form = ui.get(f"/ui/login?next={target}")
        answer = ui.post(
            "/ui/login",
            data={"key": make_key(), "csrf": csrf_of(form.text), "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/ui/messages"


def test_a_send_key_cannot_sign_in(ui: TestClient) -> None:
    with db.session_scope() as session:
        key, secret = create_key(session, tenant="acme", name="sender")
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(scope=KeyScope.send))
    form = ui.get("/ui/login")
    answer = ui.post(
        "/ui/login", data={"key": secret, "csrf": csrf_of(form.text)}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert "send key" in answer.text
    assert ui.get("/ui/messages", follow_redirects=False).status_code == 303


def test_what_names_nothing_is_a_404_page_and_a_bad_filter_names_its_field(
    ui: TestClient,
) -> None:
    sign_in(ui, make_key())
    for path in ("/ui/messages/msg_nope", "/ui/messages/a%20b", "/ui/webhooks/wh_nope"):
        answer = ui.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
    bad = ui.get("/ui/messages?status=bogus&created_after=yesterday")
    assert bad.status_code == 422
    assert "status:" in bad.text
    assert "created_after:" in bad.text
