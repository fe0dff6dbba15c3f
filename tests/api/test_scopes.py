"""Key scopes (SPEC §11) on every /v1 route there is, including routes added later.

The rule is written out here, apart from the code: `send` may only submit (POST
/v1/messages, /v1/messages/batch) and cancel; `read` only GETs; `full` everything. The
test walks `app.routes`, so a new route is checked the day it is added, and one that
declares no scope fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from app.api.auth import AuthenticatedRoute
from app.cli.keys import SCOPES
from app.keys.models import KeyScope
from tests.api.helpers import problem
from tests.conftest import Env, make_key

SEND_ONLY = {
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/batch"),
    ("POST", "/v1/messages/{message_id}/cancel"),
}


def allowed(scope: KeyScope, method: str, path: str) -> bool:
    """The rule of SPEC §11, written out apart from the code."""
    if scope is KeyScope.full:
        return True
    if scope is KeyScope.read:
        return method in ("GET", "HEAD")
    return (method, path) in SEND_ONLY


def needed(method: str, path: str) -> KeyScope:
    if method in ("GET", "HEAD"):
        return KeyScope.read
    return KeyScope.send if (method, path) in SEND_ONLY else KeyScope.full


def v1_routes(app: FastAPI) -> list[tuple[str, AuthenticatedRoute]]:
    """(path as served, route) of every /v1 route, through every included router."""
    routes = []
    for context in iter_route_contexts(app.routes):
        path = context.path or ""
        if not path.startswith("/v1"):
            continue
        route = context.original_route
        assert isinstance(route, AuthenticatedRoute), f"{path} is not an AuthenticatedRoute"
        routes.append((path, route))
    assert routes, "the app has /v1 routes"
    return routes


def operations(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        (method, path) for path, route in v1_routes(app) for method in route.methods or ()
    )


def concrete(path: str) -> str:
    # Any value will do: a refusal for scope comes before the path is looked at.
    return re.sub(r"\{[^}]+\}", "msg_01jdq3z8x0d4v6m2k7r9t5w1ya", path)


@pytest.fixture
def app(sqlite_env: Env) -> FastAPI:
    from app.main import create_app

    return create_app()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def call(client: TestClient, method: str, path: str, key: str) -> Any:
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(
        method, concrete(path), json=body, headers={"Authorization": f"Bearer {key}"}
    )


def test_every_v1_route_declares_the_scope_the_rule_gives_it(app: FastAPI) -> None:
    undeclared = [path for path, route in v1_routes(app) if route.declared_scope is None]
    assert undeclared == [], "declare one of Needs.read, Needs.send, Needs.full"
    for path, route in v1_routes(app):
        for method in route.methods or ():
            assert route.needs is needed(method, path), (method, path)
    assert ("POST", "/v1/messages") in operations(app)


@pytest.mark.parametrize("scope", list(KeyScope))
def test_each_scope_is_refused_with_403_exactly_where_the_rule_says(
    client: TestClient, app: FastAPI, scope: KeyScope
) -> None:
    key = make_key(scope=scope)
    for method, path in operations(app):
        response = call(client, method, path, key)
        if allowed(scope, method, path):
            assert response.status_code != 403, (method, path, response.text)
        else:
            body = problem(response, 403)
            assert body["type"] == "/problems/forbidden"
            assert f"a {scope.value} key" in body["detail"]


def test_401_comes_before_403(client: TestClient, app: FastAPI) -> None:
    for method, path in operations(app):
        response = call(client, method, path, "pk_unknown")
        assert problem(response, 401)["type"] == "/problems/unauthorized", (method, path)


def test_a_send_key_submits_and_cancels_but_cannot_read(client: TestClient) -> None:
    key = {"Authorization": f"Bearer {make_key(scope=KeyScope.send)}"}
    body = {
        "from": "vasiapupkin@ya.ru",
        "to": ["billy@example.org"],
        "text": "hi",
        "send_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    submitted = client.post("/v1/messages", json=body, headers=key)
    assert submitted.status_code == 202, submitted.text
    message_id = submitted.json()["id"]
    assert client.post(f"/v1/messages/{message_id}/cancel", headers=key).status_code == 200
    problem(client.get(f"/v1/messages/{message_id}", headers=key), 403)
    reader = {"Authorization": f"Bearer {make_key(scope=KeyScope.read)}"}
    assert client.get(f"/v1/messages/{message_id}", headers=reader).json()["status"] == "canceled"
    problem(client.post(f"/v1/messages/{message_id}/cancel", headers=reader), 403)


def test_the_openapi_document_names_each_route_s_scope(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    submit = paths["/v1/messages"]["post"]
    assert submit["x-pochta-scope"] == "send"
    assert "403" in submit["responses"]
    assert paths["/v1/messages"]["get"]["x-pochta-scope"] == "read"


def test_the_command_line_offers_every_scope() -> None:
    assert set(SCOPES) == {scope.value for scope in KeyScope}
