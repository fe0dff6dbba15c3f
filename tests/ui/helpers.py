"""What the browser tests share: keys of a scope, signing in, sending, screenshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page
from sqlalchemy import update

from app import db
from app.keys.models import ApiKey, KeyScope
from app.keys.service import create_key

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def make_scoped_key(scope: KeyScope, tenant: str = "acme") -> str:
    """A key of that scope (set on the row: `keys create --scope` is another branch's)."""
    with db.session_scope() as session:
        key, secret = create_key(session, tenant=tenant, name=f"{scope.value} key")
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(scope=scope))
    return secret


def sign_in(page: Page, key: str) -> None:
    page.goto("/ui/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/messages")


def shoot(page: Page, name: str) -> None:
    """A screenshot of the whole page, kept under var/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def submit(base_url: str, key: str, **fields: Any) -> str:
    """POST one message through the API; its id."""
    body = {"from": "Вася Пупкин <vasiapupkin@ya.ru>", "text": "Sent through Pochta", **fields}
    answer = httpx.post(
        f"{base_url}/v1/messages",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    message_id: str = answer.json()["id"]
    return message_id


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_get(base_url: str, key: str, path: str) -> dict[str, Any]:
    answer = httpx.get(f"{base_url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
