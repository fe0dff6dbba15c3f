"""The submit body's limits and rules (SPEC §2): refused as a 422 naming the field, cheaply."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Env

GOOD: dict[str, Any] = {"from": "a@example.org", "to": ["b@example.org"], "text": "x"}


@pytest.fixture
def client(api: TestClient) -> TestClient:
    """The in-process API of tests/api/conftest.py."""
    return api


def refused(client: TestClient, change: dict[str, Any]) -> list[dict[str, str]]:
    response = client.post("/v1/messages", json={**GOOD, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors: list[dict[str, str]] = response.json()["errors"]
    return errors


def accepted(client: TestClient, change: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/messages", json={**GOOD, **change})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def raw_of(client: TestClient, message: dict[str, Any]) -> bytes:
    raw: bytes = client.get(f"/v1/messages/{message['id']}/raw").content
    return raw


def many_headers(count: int) -> dict[str, str]:
    return {f"X-H{i}": "v" for i in range(count)}


def many_metadata(count: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(count)}


ATTACHMENT = {"filename": "a.txt", "content": "eA=="}


@pytest.mark.parametrize(
    ("field", "at_cap", "over_cap", "setting"),
    [
        ("reply_to", [f"r{i}@example.org" for i in range(10)],
         [f"r{i}@example.org" for i in range(11)], "POCHTA_MAX_REPLY_TO"),
        ("attachments", [ATTACHMENT] * 100, [ATTACHMENT] * 101, "POCHTA_MAX_ATTACHMENTS"),
        ("headers", many_headers(100), many_headers(101), "POCHTA_MAX_HEADERS"),
        ("metadata", many_metadata(50), many_metadata(51), "POCHTA_MAX_METADATA_KEYS"),
    ],
)  # fmt: skip
def test_each_cap_takes_its_limit_and_refuses_one_more(
    client: TestClient, field: str, at_cap: Any, over_cap: Any, setting: str
) -> None:
    accepted(client, {field: at_cap})
    (error,) = refused(client, {field: over_cap})
    assert error["loc"] == field
    assert setting in error["message"]


def test_a_cap_is_a_setting(client: TestClient, sqlite_env: Env) -> None:
    sqlite_env["POCHTA_MAX_ATTACHMENTS"] = "2"
    accepted(client, {"attachments": [ATTACHMENT] * 2})
    (error,) = refused(client, {"attachments": [ATTACHMENT] * 3})
    assert error["loc"] == "attachments"


@pytest.mark.parametrize(
    ("metadata", "loc"),
    [({"k" * 41: "v"}, "metadata"), ({"k": "v" * 501}, "metadata")],
)
def test_metadata_keys_and_values_are_bounded(
    client: TestClient, metadata: dict[str, str], loc: str
) -> None:
    accepted(client, {"metadata": {"k" * 40: "v" * 500}})
    (error,) = refused(client, {"metadata": metadata})
    assert error["loc"] == loc


@pytest.mark.parametrize(
    "address",
    [
        "l" * 65 + "@example.org",
        "a" * 10 + "@" + ("d" * 60 + ".") * 4 + "org",
        "ж" * 33 + "@example.org",
    ],
)
def test_local_part_over_64_and_address_over_254_octets_are_422(
    client: TestClient, address: str
) -> None:
    (error,) = refused(client, {"to": [address]})
    assert error["loc"] == "to[0]"
    assert "octets" in error["message"] or "too long" in error["message"]


def test_many_times_the_caps_is_refused_at_once(client: TestClient) -> None:
    # Measured before: 150,000 empty attachments took 15 s to refuse, 500,000 headers
    # were accepted after 8.4 s. Compared with an accepted one-line message, not a clock.
    started = time.perf_counter()
    accepted(client, {})
    one_message = time.perf_counter() - started
    json = {"content-type": "application/json"}
    changes: list[dict[str, Any]] = [
        {"attachments": [{}] * 150_000},
        {"headers": many_headers(500_000)},
        {"to": ["b@example.org"] * 100_000},
        {"reply_to": ["b@example.org"] * 100_000},
        {"metadata": many_metadata(200_000)},
    ]
    for change in changes:
        content = orjson.dumps({**GOOD, **change})
        started = time.perf_counter()
        response = client.post("/v1/messages", content=content, headers=json)
        took = time.perf_counter() - started
        assert response.status_code == 422, response.text[:500]
        (error,) = response.json()["errors"]
        assert error["loc"] == next(iter(change))
        # The JSON itself (megabytes) still has to be read and parsed once.
        assert took < max(1.0, 100 * one_message), (change.keys(), took)


def test_a_body_at_every_cap_at_once_is_answered_quickly(client: TestClient) -> None:
    body = {
        "to": [f"t{i}@example.org" for i in range(50)],
        "reply_to": [f"r{i}@example.org" for i in range(10)],
        "attachments": [{"filename": f"f{i}.bin", "content": "eA=="} for i in range(100)],
        "headers": many_headers(100),
        "metadata": {f"{i:040d}": "v" * 500 for i in range(50)},
    }
    started = time.perf_counter()
    accepted(client, body)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"to": ["A" * 100_000 + " <b@example.org>"]}, "to[0]"),
        ({"to": ["c@example.org", "B" * 2_000 + " <b@example.org>"]}, "to[1]"),
        ({"from": "N" * 2_000 + " <a@example.org>"}, "from"),
        ({"reply_to": ["R" * 2_000 + " <r@example.org>"]}, "reply_to[0]"),
        ({"headers": {"X-" + "a" * 10_000: "v"}}, "headers"),
        ({"headers": {"Sender": "S" * 3_000 + " <s@example.org>"}}, "headers.Sender"),
    ],
)
def test_what_cannot_be_folded_into_998_octet_lines_is_422(
    client: TestClient, change: dict[str, Any], loc: str
) -> None:
    # Each of these was a 202 that failed at DATA with "Line too long".
    errors = refused(client, change)
    assert [e["loc"] for e in errors] == [loc], errors


def test_long_names_that_can_be_folded_are_sent_in_short_lines(client: TestClient) -> None:
    message = accepted(client, {"to": ["Б " * 128 + "<b@example.org>"], "subject": "s " * 400})
    raw = raw_of(client, message)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


@pytest.mark.parametrize(
    "name",
    ["Return-Path", "Received", "Resent-From", "resent-message-id", "DKIM-Signature",
     "ARC-Seal", "arc-message-signature", "Authentication-Results", "Received-SPF"],
)  # fmt: skip
def test_trace_and_authentication_headers_are_refused(client: TestClient, name: str) -> None:
    (error,) = refused(client, {"headers": {name: "x"}})
    assert error["loc"] == "headers"
    assert name in error["message"]


@pytest.mark.parametrize("override", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
                                      "\u2066", "\u2067", "\u2068", "\u2069"])  # fmt: skip
def test_bidirectional_overrides_are_refused(client: TestClient, override: str) -> None:
    attachment = {"filename": f"invoice{override}fdp.exe", "content": "eA=="}
    (error,) = refused(client, {"attachments": [attachment]})
    assert error["loc"] == "attachments[0].filename"
    (error,) = refused(client, {"to": [f"Bank{override} <b@example.org>"]})
    assert error["loc"] == "to[0]"
    (error,) = refused(client, {"from": f"a{override}b@example.org"})
    assert error["loc"] == "from"


def test_wrapped_base64_is_accepted_and_sent_as_the_same_bytes(client: TestClient) -> None:
    data = bytes(range(256)) * 4
    wrapped = base64.encodebytes(data).decode()  # lines of 76, as `base64` prints
    assert "\n" in wrapped
    message = accepted(client, {"attachments": [{"filename": "a.bin", "content": wrapped}]})
    parsed = message_from_bytes(raw_of(client, message), policy=policy.default)
    (part,) = list(parsed.iter_attachments())
    assert part.get_content() == data
    (error,) = refused(client, {"attachments": [{"filename": "a", "content": "eA=\n=x"}]})
    assert error["loc"] == "attachments[0].content"


def test_a_scheduled_message_is_dated_when_it_is_released(client: TestClient) -> None:
    send_at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    message = accepted(client, {"send_at": send_at.isoformat()})
    parsed = message_from_bytes(raw_of(client, message), policy=policy.default)
    assert parsedate_to_datetime(str(parsed["Date"])) == send_at


def test_a_message_due_now_is_dated_now(client: TestClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    message = accepted(client, {"send_at": (before - timedelta(hours=1)).isoformat()})
    parsed = message_from_bytes(raw_of(client, message), policy=policy.default)
    assert parsedate_to_datetime(str(parsed["Date"])) >= before


def test_a_batch_item_over_a_cap_is_its_own_422(client: TestClient) -> None:
    items = [GOOD, {**GOOD, "attachments": [ATTACHMENT] * 101}, GOOD]
    response = client.post("/v1/messages/batch", json={"messages": items})
    assert response.status_code == 200, response.text
    statuses = [result["status"] for result in response.json()["results"]]
    assert statuses == [202, 422, 202]
    (error,) = response.json()["results"][1]["error"]["errors"]
    assert error["loc"] == "attachments"


def test_display_names_and_header_values_are_bounded(client: TestClient) -> None:
    # Encoding non-ASCII text costs the square of its length in the email package, so
    # these caps bound what one request can cost (README, Limits).
    name = "Ж" * 256
    accepted(client, {"from": f"{name} <a@example.org>", "headers": {"X-A": "ж" * 998}})
    (error,) = refused(client, {"to": ["Ж" * 257 + " <b@example.org>"]})
    assert error["loc"] == "to[0]"
    assert "display name over 256" in error["message"]
    (error,) = refused(client, {"headers": {"X-A": "ж" * 999}})
    assert error["loc"] == "headers.X-A"
    values = {f"X-H{i}": "ж" * 998 for i in range(17)}
    (error,) = refused(client, {"headers": values})
    assert error["loc"] == "headers"
    assert "16384" in error["message"]


def test_the_costliest_text_the_caps_allow_is_built_quickly(client: TestClient) -> None:
    words = "жж " * 85
    body = {
        "from": f"{words} <a@example.org>",
        "to": [f"{words} <t{i}@example.org>" for i in range(50)],
        "reply_to": [f"{words} <r{i}@example.org>" for i in range(10)],
        "subject": "ж " * 499,
        "headers": {f"X-H{i}": "жж " * 332 for i in range(16)},
    }
    started = time.perf_counter()
    message = accepted(client, body)
    assert time.perf_counter() - started < 1.0
    assert max(len(line) for line in raw_of(client, message).split(b"\r\n")) <= 998
