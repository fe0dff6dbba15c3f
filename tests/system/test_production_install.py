"""Pochta as production installs it: only the runtime dependencies, never the dev extras.

The repository's `.venv` holds pytest and friends, whose own dependencies can hide a
runtime package that Pochta needs but does not declare (kombu's Redis transport imports
`packaging`, which only pytest pulled in). So this module builds a fresh virtual
environment the way the Dockerfile's builder stage does, lays out a working directory
the way its runtime stage does (alembic.ini and migrations/ in it, no source tree), and
runs the installed `pochta` commands from there against a scripted relay.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from harness.ports import free_port
from harness.relay import ScriptedRelay
from harness.runtime_install import (
    REPO,
    RuntimeVenv,
    build_runtime_venv,
    copy_from_checkout,
    dockerfile_copies,
    run_checked,
)
from harness.services import create_database, drop_database
from harness.stack import Stack
from tests.conftest import BASE_ENV, REDIS_DB, SHARED_POSTGRES, SHARED_REDIS

COMMAND_TIMEOUT = 120
# The two brokers of SPEC §4: redis:// in production, sqla+sqlite:// embedded. Celery
# imports a transport only when it connects, so importing app/ and worker/ misses them.
TRANSPORTS = ("kombu.transport.redis", "kombu.transport.sqlalchemy")
# The [dev] extras by import name (each is importable under its own): none may be
# importable in production.
DEV_ONLY = [
    re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].replace("-", "_")
    for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["dev"]
]


def test_the_build_context_lets_in_every_file_the_dockerfile_copies() -> None:
    # .dockerignore is an allow-list ("*", then "!path" lines): a COPY of a path it
    # does not let in fails `docker build`, which no test here runs.
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in [line.strip() for line in lines], "not an allow-list"
    allowed = [line[1:].strip().removesuffix("/") for line in lines if line.startswith("!")]
    copied = [name for names in dockerfile_copies().values() for name in names]

    shut_out = [
        name
        for name in copied
        if not any(name == entry or name.startswith(entry + "/") for entry in allowed)
    ]

    assert shut_out == []
    assert {"pyproject.toml", "app", "worker", "migrations"} <= set(copied)


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> RuntimeVenv:
    """Built once for the module (about a minute, nearly all of it pip)."""
    return build_runtime_venv(tmp_path_factory.mktemp("production-install"))


IMPORT_EVERYTHING = f"""
import importlib, importlib.util, json, pkgutil
import app, worker
dev = [name for name in {list(DEV_ONLY)!r} if importlib.util.find_spec(name) is not None]
failed = {{}}
names = [
    module.name
    for package in (app, worker)
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
]
for name in names + {list(TRANSPORTS)!r}:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = f"{{type(error).__name__}}: {{error}}"
print(json.dumps({{"app": app.__file__, "modules": len(names), "failed": failed, "dev": dev}}))
"""


def test_every_module_and_broker_transport_imports_in_the_runtime_install(
    runtime_venv: RuntimeVenv, tmp_path: Path
) -> None:
    out = run_checked(
        [str(runtime_venv.bin / "python"), "-c", IMPORT_EVERYTHING],
        cwd=tmp_path,
        env=runtime_venv.environment(),
        timeout=COMMAND_TIMEOUT,
    )
    report = json.loads(out.splitlines()[-1])

    assert report["failed"] == {}
    assert report["dev"] == [], "the runtime install got dev packages"
    assert Path(report["app"]).is_relative_to(runtime_venv.root), "imported from the checkout"
    assert report["modules"] > 20


class InstalledStack(Stack):
    """Stack's api/worker/scheduler, but the installed `pochta` run from the image's WORKDIR."""

    def __init__(self, venv: RuntimeVenv, workdir: Path, env: dict[str, str]) -> None:
        super().__init__(env, workdir)
        self.venv = venv
        self.workdir = workdir

    def start_process(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [str(self.venv.bin / "pochta"), *args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def pochta(self, *args: str) -> str:
        """A one-shot `pochta` command (migrate, keys) in the same place; its stdout."""
        return run_checked(
            [str(self.venv.bin / "pochta"), *args],
            cwd=self.workdir,
            env=self.env,
            timeout=COMMAND_TIMEOUT,
        )


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Postgres + Redis on a database and Redis db of the test's own; or nothing at all,
    so that the embedded defaults (./var/pochta.db, ./var/broker.db) apply as in the image."""
    if request.param == "sqlite":
        yield {}
        return
    database = f"pochta_prod_{uuid.uuid4().hex[:12]}"
    broker = f"{SHARED_REDIS}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    url = create_database(SHARED_POSTGRES, database)
    try:
        yield {
            "POCHTA_DATABASE_URL": url,
            "POCHTA_BROKER_URL": broker,
            "POCHTA_SECRET_KEY": "production-install-test-secret",
        }
    finally:
        drop_database(SHARED_POSTGRES, database)
        redis.Redis.from_url(broker).flushdb()


@pytest.fixture
def installed(
    runtime_venv: RuntimeVenv, backend_settings: dict[str, str], tmp_path: Path
) -> Iterator[tuple[InstalledStack, ScriptedRelay]]:
    workdir = tmp_path / "app"
    copy_from_checkout(dockerfile_copies()["runtime"], workdir)
    (workdir / "var").mkdir()
    with ScriptedRelay() as relay:
        env = runtime_venv.environment(
            {
                **BASE_ENV,
                **backend_settings,
                "POCHTA_SMTP_HOST": relay.host,
                "POCHTA_SMTP_PORT": str(relay.port),
                "POCHTA_WORKER_METRICS_PORT": str(free_port()),
            }
        )
        stack = InstalledStack(runtime_venv, workdir, env)
        with stack:
            yield stack, relay


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_installed_processes_deliver_mail(
    installed: tuple[InstalledStack, ScriptedRelay], backend_settings: dict[str, str]
) -> None:
    stack, relay = installed
    assert "latest schema" in stack.pochta("migrate")
    key = stack.pochta("keys", "create", "--tenant", "acme", "--name", "prod").splitlines()[-1]
    stack.start()

    with stack.client(key) as client:
        ready = client.get("/readyz")
        assert ready.json() == {"status": "ready"}, f"{ready.text}\n{stack.logs()}"
        now = client.post(
            "/v1/messages",
            json={"from": "noreply@example.org", "to": ["billy@example.org"], "text": "now"},
        )
        # Only the scheduler releases a scheduled message, so this one needs all three.
        later = client.post(
            "/v1/messages",
            json={
                "from": "noreply@example.org",
                "to": ["vasia@example.org"],
                "text": "later",
                "send_at": _utc(datetime.now(UTC) + timedelta(seconds=2)),
            },
        )
        assert (now.status_code, later.status_code) == (202, 202), now.text + later.text
        assert later.json()["status"] == "scheduled"
        finals = [
            stack.wait_for_status(client, response.json()["id"], {"sent", "failed"}, timeout=60)
            for response in (now, later)
        ]

    assert [final["status"] for final in finals] == ["sent", "sent"], stack.logs()
    assert sorted(rcpt for m in relay.wait_for(2) for rcpt in m.rcpt_tos) == [
        "billy@example.org",
        "vasia@example.org",
    ]
    # The dashboard's templates and static files are package data of the wheel.
    login = httpx.get(f"{stack.url}/ui/login", timeout=10)
    assert login.status_code == 200, login.text
    assert 'action="/ui/login"' in login.text
    assert httpx.get(f"{stack.url}/ui/static/refresh.js", timeout=10).status_code == 200
    # The worker serves its metrics too (prometheus_client is a runtime dependency).
    metrics = httpx.get(
        f"http://127.0.0.1:{stack.env['POCHTA_WORKER_METRICS_PORT']}/metrics", timeout=10
    )
    assert 'pochta_attempts_total{outcome="sent"' in metrics.text
    if not backend_settings:
        assert (stack.workdir / "var" / "pochta.db").is_file()
        assert (stack.workdir / "var" / "broker.db").is_file()
    alive = {name: process.poll() for name, process in stack.processes.items()}
    assert alive == dict.fromkeys(alive), f"a process exited: {alive}\n{stack.logs()}"
