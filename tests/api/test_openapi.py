"""/openapi.json is what the API does: schemathesis fuzzes every route against it.

Generated requests, valid and invalid, go to the app on PostgreSQL (the stricter backend:
it refuses NUL in text, for one). No answer may be a 5xx, or outside the status codes,
content types and schemas the document declares; no request the schema forbids may
be accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from tests.conftest import Env, _configure, make_key

# Per operation and generation phase; with 9 operations a few hundred requests in all.
MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One migrated PostgreSQL database for the whole module (migrating per test is slow)."""
    yield from _configure("postgres", Path(tmp_path_factory.mktemp("openapi")))


@pytest.fixture(scope="module")
def fuzz_key(fuzz_env: Env) -> str:
    return make_key()


def _app() -> FastAPI:
    from app.main import create_app

    return create_app()


# Loaded when the module is collected: schemathesis's lazy (fixture) loader does not work
# with this pytest. Requests are only made in the test, once fuzz_env has set settings up.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _app(),
    config=SchemathesisConfig.from_dict(
        {
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "checks": {
                # Schema-valid is not business-valid: `to` is a string to the schema, but
                # "x" is no address, and 422 is the right answer to it.
                "positive_data_acceptance": {"enabled": False},
            },
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


@schema.parametrize()
def test_every_route_answers_as_documented(case: Case[Any], fuzz_key: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"})


def test_docs_and_redoc_load_every_asset_from_this_server(sqlite_env: Env) -> None:
    """Offline, a page that fetches a script from a CDN is a blank page."""
    from fastapi.testclient import TestClient

    client = TestClient(_app())
    wanted = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "//" not in html, f"{page} names another origin (http://, https://, //)"
        urls = re.findall(r"""(?:src|href|spec-url|url)\s*[=:]\s*["']([^"']+)["']""", html)
        scripts = [url for url in urls if url.endswith(".js")]
        assert scripts, f"{page} loads no script of ours"
        assert "/openapi.json" in urls
        for url in urls:
            assert url.startswith("/"), url
            asset = client.get(url)
            assert asset.status_code == 200, url
            kind = next(v for k, v in wanted.items() if url.endswith(k))
            assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
            assert len(asset.content) > 1000, f"{url} is not the real thing"
