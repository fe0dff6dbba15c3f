"""The SSRF rule for webhook targets (app/webhooks/addresses.py) and webhook secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from cryptography.fernet import InvalidToken
from standardwebhooks.webhooks import Webhook

from app.config import Settings
from app.webhooks import secrets
from app.webhooks.addresses import check_url, is_forbidden

FORBIDDEN = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space
    "100.127.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "0.0.0.0",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:100.64.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated), reserved
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:db8::1",  # documentation
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.1",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("ip", FORBIDDEN)
def test_forbidden_addresses(ip: str) -> None:
    assert is_forbidden(ip)


@pytest.mark.parametrize("ip", ALLOWED)
def test_public_addresses_are_allowed(ip: str) -> None:
    assert not is_forbidden(ip)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",  # resolves to loopback
        "https://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/",
        "http://100.64.1.1/",
        # What inet_aton takes for 127.0.0.1: decimal, octal, hex, short forms.
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.0.0.1/",
        "http://127.1/",
        "http://0/",
    ],
)
def test_private_urls_are_refused(url: str) -> None:
    error = check_url(url, allow_private=False)
    assert error is not None
    assert "address not allowed" in error


def test_private_urls_pass_when_allowed() -> None:
    assert check_url("http://127.0.0.1:8080/hook", allow_private=True) is None
    assert check_url("http://localhost/hook", allow_private=True) is None


def test_public_literal_is_accepted() -> None:
    # A literal address resolves to itself: no DNS needed.
    assert check_url("https://8.8.8.8/hook", allow_private=False) is None


@pytest.mark.parametrize(
    "url", ["ftp://example.org/x", "file:///etc/passwd", "gopher://x", "example.org/hook", ""]
)
def test_only_http_and_https(url: str) -> None:
    error = check_url(url, allow_private=True)
    assert error is not None
    assert "http" in error


@pytest.mark.parametrize("url", ["http://", "http:///path", "http://host:99999/", "http://[::1/"])
def test_malformed_urls(url: str) -> None:
    assert check_url(url, allow_private=True) is not None


def test_unresolvable_host_is_refused() -> None:
    error = check_url("http://no-such-host.invalid/hook", allow_private=False)
    assert error is not None
    assert "does not resolve" in error


def test_secret_shape_and_signing_key() -> None:
    secret = secrets.new_secret()
    assert secret.startswith("whsec_")
    key = secrets.signing_key(secret)
    assert len(key) == 32
    assert base64.b64encode(key).decode() == secret.removeprefix("whsec_")
    assert secrets.new_secret() != secret


def test_signing_key_matches_standard_webhooks() -> None:
    # The reference library signs with the same bytes as signing_key() gives.
    secret = secrets.new_secret()
    body = '{"id": "evt_1"}'
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    mac = hmac.new(secrets.signing_key(secret), f"evt_1.1700000000.{body}".encode(), hashlib.sha256)
    assert (
        Webhook(secret).sign("evt_1", at, body) == "v1," + base64.b64encode(mac.digest()).decode()
    )


def test_encrypted_secret_round_trips_and_hides_the_plaintext() -> None:
    settings = Settings(secret_key="one-key")
    secret = secrets.new_secret()
    token = secrets.encrypt(settings, secret)
    assert secret not in token
    assert secret.removeprefix("whsec_") not in token
    assert secrets.decrypt(settings, token) == secret
    other = Settings(secret_key="another-key")
    with pytest.raises(InvalidToken):
        secrets.decrypt(other, token)
