"""Fixtures that start real services: databases, brokers, relays, Pochta's own processes."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from app import db, runtime
from app.cli.migrate import run_migrations
from app.config import get_settings
from app.keys.models import KeyScope
from app.keys.service import create_key
from app.outbox import broker
from harness.relay import ScriptedRelay
from harness.services import create_database, drop_database
from worker import process

SHARED_POSTGRES = os.environ.get(
    "POCHTA_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SHARED_REDIS = os.environ.get("POCHTA_TEST_REDIS", "redis://127.0.0.1:6379")
# A Redis db number of our own on the shared server, flushed before and after each test;
# runs at the same time on one machine must each set their own. Under pytest-xdist,
# worker gwN takes the number after it plus N (`make test`'s two workers: 11 and 12).
REDIS_DB = int(os.environ.get("POCHTA_TEST_REDIS_DB", "11")) + int(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
)

# Settings every test starts from: fast retries, a relay that is set per test.
BASE_ENV = {
    "POCHTA_RETRY_BASE_SECONDS": "0.05",
    "POCHTA_RETRY_MAX_SECONDS": "0.2",
    "POCHTA_RETRY_MAX_AGE_SECONDS": "60",
    "POCHTA_SCHEDULER_INTERVAL_SECONDS": "0.05",
    # A reply that says "slow down" pauses its relay (SPEC §10): briefly, as retries are.
    "POCHTA_RELAY_BACKOFF_SECONDS": "0.2",
    "POCHTA_SMTP_TIMEOUT": "5",
    "POCHTA_SMTP_HELO_NAME": "pochta.test",
    "POCHTA_LOG_LEVEL": "INFO",
    "POCHTA_SECRET_KEY": "test-secret-key-not-for-production",
}


@dataclass
class Env:
    """The POCHTA_* variables of one test: applied in-process and passed to subprocesses."""

    values: dict[str, str] = field(default_factory=dict)
    backend: str = "sqlite"

    def __setitem__(self, key: str, value: str) -> None:
        self.values[key] = value
        os.environ[key] = value
        reload_settings()

    def for_subprocess(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POCHTA_")}
        return {**env, **self.values, "PYTHONUNBUFFERED": "1"}


def reload_settings() -> None:
    """Forget every cached object built from settings."""
    get_settings.cache_clear()
    broker.get_celery.cache_clear()
    runtime.stop()
    process.close_pool()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that asks runs on both backends."""
    return str(request.param)


@pytest.fixture
def sqlite_only() -> str:
    return "sqlite"


@contextmanager
def applied(env: Env, *, migrate: bool = True) -> Iterator[Env]:
    """env's settings in force (and migrated, unless told not) for the block; the previous
    ones after it."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("POCHTA_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env.values)
    reload_settings()
    try:
        if migrate:
            run_migrations()
        yield env
    finally:
        reload_settings()
        for key in [k for k in os.environ if k.startswith("POCHTA_")]:
            del os.environ[key]
        os.environ.update(saved)
        reload_settings()


class MigratedTemplates:
    """A database of each backend migrated once per run, copied for every test: running the
    migrations costs about half a second a test on PostgreSQL, a copy a tenth of that."""

    def __init__(self) -> None:
        self._sqlite: Path | None = None
        self._postgres: str | None = None

    def sqlite(self, path: Path) -> str:
        """A migrated SQLite database at path; its URL."""
        if self._sqlite is None:
            template = Path(tempfile.mkdtemp(prefix="pochta-template-")) / "pochta.db"
            self._migrate(f"sqlite:///{template}")
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)
        return f"sqlite:///{path}"

    def postgres(self, name: str) -> str:
        """A migrated PostgreSQL database called name; its URL."""
        if self._postgres is None:
            template = f"pochta_test_template_{uuid.uuid4().hex[:12]}"
            self._migrate(create_database(SHARED_POSTGRES, template))
            self._postgres = template
        return create_database(SHARED_POSTGRES, name, template=self._postgres)

    def drop(self) -> None:
        if self._postgres is not None:
            drop_database(SHARED_POSTGRES, self._postgres)
        if self._sqlite is not None:
            shutil.rmtree(self._sqlite.parent, ignore_errors=True)
        self._sqlite = self._postgres = None

    @staticmethod
    def _migrate(url: str) -> None:
        # applied() disposes of the engine afterwards: a template must have no connection.
        with applied(Env(values={**BASE_ENV, "POCHTA_DATABASE_URL": url})):
            pass


TEMPLATES = MigratedTemplates()


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    TEMPLATES.drop()


def _configure(backend: str, tmp_path: Path) -> Iterator[Env]:
    env = Env(backend=backend, values=dict(BASE_ENV))
    database = None
    if backend == "postgres":
        database = f"pochta_test_{uuid.uuid4().hex[:12]}"
        env.values["POCHTA_DATABASE_URL"] = TEMPLATES.postgres(database)
        env.values["POCHTA_BROKER_URL"] = f"{SHARED_REDIS}/{REDIS_DB}"
        redis.Redis.from_url(f"{SHARED_REDIS}/{REDIS_DB}").flushdb()
    else:
        env.values["POCHTA_DATABASE_URL"] = TEMPLATES.sqlite(tmp_path / "pochta.db")
        env.values["POCHTA_BROKER_URL"] = f"sqla+sqlite:///{tmp_path}/broker.db"
    try:
        with applied(env, migrate=False):
            yield env
    finally:
        if database is not None:
            drop_database(SHARED_POSTGRES, database)
            redis.Redis.from_url(f"{SHARED_REDIS}/{REDIS_DB}").flushdb()


@pytest.fixture
def env(backend: str, tmp_path: Path) -> Iterator[Env]:
    """A migrated database and a broker on the test's backend, with fast-retry settings."""
    yield from _configure(backend, tmp_path)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[Env]:
    """The embedded backend alone, for tests of logic that does not depend on it."""
    yield from _configure("sqlite", tmp_path)


@pytest.fixture
def relay(env: Env) -> Iterator[ScriptedRelay]:
    """A scripted ESMTP relay that Pochta is pointed at."""
    with ScriptedRelay() as server:
        env["POCHTA_SMTP_HOST"] = server.host
        env["POCHTA_SMTP_PORT"] = str(server.port)
        yield server


def make_key(tenant: str = "acme", scope: KeyScope = KeyScope.full) -> str:
    with db.session_scope() as session:
        _, secret = create_key(session, tenant=tenant, name="test", scope=scope)
    return secret
