"""Fixtures of the API tests: the application in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Env, make_key


@pytest.fixture
def api(sqlite_env: Env) -> Iterator[TestClient]:
    """The API in-process on SQLite, authenticated as tenant acme."""
    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {make_key()}"
        yield client
