"""The relays page in headless Chromium: what every worker shares about each relay."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from app.clock import utcnow
from app.config import get_settings
from app.keys.models import KeyScope
from app.relays.state import store_for
from tests.ui.conftest import Running, Watched
from tests.ui.helpers import make_scoped_key, shoot, sign_in


def test_the_relays_page_shows_each_relays_state_rate_and_sessions(
    running: Running, watched: Watched
) -> None:
    page = watched.page
    # As a worker marks a relay it could not reach (the routes never use this one).
    store_for(get_settings()).mark_down(
        "spare", until=utcnow() + timedelta(minutes=10), reason="connection refused"
    )
    sign_in(page, make_scoped_key(KeyScope.read))
    page.click("nav >> text=Relays")
    primary = page.locator("tr[data-relay=primary]")
    expect(primary.locator(".badge")).to_have_text("up")
    expect(primary).to_contain_text("100/s")
    expect(primary).to_contain_text(f"127.0.0.1:{running.relay.port}")
    spare = page.locator("tr[data-relay=spare]")
    expect(spare.locator(".badge")).to_have_text("down")
    expect(spare).to_contain_text(re.compile(r"until in \d+ min"))
    expect(spare).to_contain_text("connection refused")
    expect(spare).to_contain_text("0 of 2")
    expect(spare).to_contain_text("unlimited")
    shoot(page, "relays")
