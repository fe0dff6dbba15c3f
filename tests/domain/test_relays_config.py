"""The relays file (SPEC §10): what it accepts, the one line naming a bad key, the routes;
and the AIMD arithmetic of shaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.config import Settings
from app.relays import shaping
from app.relays.config import Rate, RelaysFileError, load_relays, parse_relays

GOOD = """
[relays.primary]
host = "smtp.example.org"
port = 587
security = "starttls"
username = "pochta"
password_env = "H6_TEST_PRIMARY_PASSWORD"
max_connections = 10
rate = "50/s"

[relays.backup]
host = "smtp.backup.example"
port = 465
security = "tls"
timeout = 7

[relays.acme]
host = "127.0.0.1"
port = 2600

[[routes]]
tenant = "acme"
relays = ["acme", "backup"]

[[routes]]
sender_domain = "news.example.org"
tag = "newsletter"
relays = ["backup"]

[[routes]]
relays = ["primary", "backup"]
"""


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("H6_TEST_PRIMARY_PASSWORD", "s3cret")
    return Settings(smtp_helo_name="pochta.test", smtp_timeout=30)


def test_a_good_file_gives_each_relay_its_own_session_settings(base: Settings) -> None:
    relays = parse_relays(GOOD, base)
    primary = relays.by_name["primary"]
    assert primary.label == "primary smtp.example.org:587"
    assert primary.settings.smtp_security == "starttls"
    assert primary.settings.smtp_password is not None
    assert primary.settings.smtp_password.get_secret_value() == "s3cret"
    assert primary.max_connections == 10
    assert primary.rate == Rate(50, 1)
    backup = relays.by_name["backup"]
    assert (backup.settings.smtp_timeout, backup.settings.smtp_helo_name) == (7, "pochta.test")
    assert backup.settings.smtp_username is None
    assert not backup.limited


def test_the_first_matching_route_wins_and_the_default_takes_the_rest(base: Settings) -> None:
    relays = parse_relays(GOOD, base)

    def route(tenant: str, sender: str, tags: list[str]) -> list[str]:
        chosen = relays.route_for(tenant=tenant, from_header=sender, tags=tags)
        return [relay.name for relay in chosen]

    assert route("acme", "A <a@news.example.org>", ["newsletter"]) == ["acme", "backup"]
    assert route("other", "Вася <a@NEWS.example.org>", ["newsletter"]) == ["backup"]
    assert route("other", "a@news.example.org", []) == ["primary", "backup"]
    assert route("other", "a@example.org", ["newsletter"]) == ["primary", "backup"]


def test_without_a_file_the_smtp_settings_are_the_relay_default(base: Settings) -> None:
    relays = load_relays(base)
    (default,) = relays.route_for(tenant="t", from_header="a@b.c", tags=[])
    assert default.name == "default"
    assert default.label == f"default {base.smtp_host}:{base.smtp_port}"
    assert default.settings is base


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("port = 587", "port = 0"), "relays.primary.port:"),
        (("timeout = 7", "timout = 7"), "relays.backup.timout: unknown key"),
        (('rate = "50/s"', 'rate = "fast"'), "relays.primary.rate:"),
        (('security = "tls"', 'security = "ssl"'), "relays.backup.security:"),
        (("H6_TEST_PRIMARY_PASSWORD", "H6_TEST_UNSET"), "password_env: the variable H6_TEST_UNSET"),
        (('relays = ["backup"]', 'relays = ["nowhere"]'), "routes[1].relays: no relay named"),
        (('[[routes]]\nrelays = ["primary", "backup"]', ""), "a default route"),
        (("max_connections = 10", "max_connections = -1"), "relays.primary.max_connections"),
        (('host = "127.0.0.1"', 'host = "127.0.0.1"\npassword = "x"'), "relays.acme.password"),
    ],
)
def test_a_bad_file_is_refused_with_one_line_naming_the_key(
    base: Settings, change: tuple[str, str], named: str
) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(RelaysFileError) as refused:
        parse_relays(text, base)
    assert named in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_password_in_clear_to_a_remote_relay_is_refused(base: Settings) -> None:
    text = GOOD.replace('security = "starttls"', 'security = "none"')
    with pytest.raises(RelaysFileError, match=r"in clear to smtp\.example\.org"):
        parse_relays(text, base)


def test_a_rate_limited_reply_halves_the_rate_never_below_one_a_minute() -> None:
    assert shaping.halved(50) == 25
    assert shaping.halved(1 / 60) == 1 / 60
    assert shaping.halved(0.02) == 1 / 60


def test_each_clean_minute_adds_ten_percent_up_to_the_configured_rate() -> None:
    then = datetime(2026, 12, 1, tzinfo=UTC)
    rate = shaping.current_rate
    assert rate(50, None, None, then) == 50
    assert rate(None, 10, then, then) is None, "a relay without a rate has no limit to shape"
    assert rate(50, 25, then, then + timedelta(seconds=59)) == 25
    assert rate(50, 25, then, then + timedelta(minutes=1)) == pytest.approx(27.5)
    assert rate(50, 25, then, then + timedelta(minutes=3)) == pytest.approx(25 * 1.1**3)
    assert rate(50, 25, then, then + timedelta(minutes=8)) == 50
    assert rate(50, 25, then, then + timedelta(days=30)) == 50
