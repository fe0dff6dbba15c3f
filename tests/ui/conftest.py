"""Fixtures of the dashboard tests: Pochta's processes, a scripted relay, headless Chromium.

One stack (api, worker, scheduler on SQLite) and one relay serve every browser test of
tests/ui: tests keep apart by using addresses and tenants of their own. Each test gets a
fresh browser context, so no cookie passes from one to the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, Dialog, Page, Playwright, sync_playwright

from harness.relay import ScriptedRelay
from harness.stack import Stack
from tests.conftest import BASE_ENV, Env, applied

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium: Playwright's own browser download cannot work here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Running:
    """The processes the browser talks to, and the relay behind them."""

    stack: Stack
    relay: ScriptedRelay
    env: Env

    @property
    def url(self) -> str:
        return self.stack.url


@pytest.fixture(scope="package")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("ui")
    env = Env(backend="sqlite", values=dict(BASE_ENV))
    env.values["POCHTA_DATABASE_URL"] = f"sqlite:///{tmp}/pochta.db"
    env.values["POCHTA_BROKER_URL"] = f"sqla+sqlite:///{tmp}/broker.db"
    # Webhook endpoints on loopback (nothing is delivered: the tests look at the log).
    env.values["POCHTA_WEBHOOK_ALLOW_PRIVATE"] = "true"
    with ScriptedRelay() as relay:
        env.values["POCHTA_SMTP_HOST"] = relay.host
        env.values["POCHTA_SMTP_PORT"] = str(relay.port)
        # Two relays for the relays page; every route uses the scripted one alone.
        relays_file = tmp / "relays.toml"
        relays_file.write_text(
            f'[relays.primary]\nhost = "{relay.host}"\nport = {relay.port}\nrate = "100/s"\n'
            f'[relays.spare]\nhost = "{relay.host}"\nport = 9\nmax_connections = 2\n'
            '[[routes]]\nrelays = ["primary"]\n'
        )
        env.values["POCHTA_RELAYS_FILE"] = str(relays_file)
        with applied(env), Stack(env.for_subprocess(), tmp) as stack:
            stack.start()
            yield Running(stack=stack, relay=relay, env=env)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@dataclass
class Watched:
    """A page, and what it did that a test may want to deny: dialogs, foreign requests."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched(browser: Browser, running: Running) -> Iterator[Watched]:
    """A page of a fresh context, every dialog, request and console error recorded."""
    context = browser.new_context(base_url=running.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = Watched(page=page)

    def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on(
        "console",
        lambda message: (
            seen.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    try:
        yield seen
    finally:
        context.close()
    # Every page's own script and styles pass its Content-Security-Policy.
    blocked = [e for e in seen.console_errors if "Content Security Policy" in e]
    assert blocked == [], blocked
