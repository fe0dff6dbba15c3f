"""A command that meets no database, an unmigrated one or a bad URL says so in one line.

Only `migrate` and `dev` create a database: the others leave the directory as they found it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from app.cli.migrate import migrations_dir
from harness.ports import free_port
from tests.conftest import Env

POCHTA = [sys.executable, "-m", "app.cli"]
KEYS_COMMANDS = [
    ("keys", "list"),
    ("keys", "create", "--tenant", "acme", "--name", "web"),
    ("keys", "revoke", "key_01nope"),
]
SERVING_COMMANDS = [("api", "--port", "0"), ("worker",), ("scheduler",)]


def run(
    env: Env, *args: str, cwd: Path | None = None, **variables: str
) -> subprocess.CompletedProcess[str]:
    """pochta args, with env's settings changed by variables ('' unsets one)."""
    environment = env.for_subprocess()
    for name, value in variables.items():
        environment.pop(name, None)
        if value:
            environment[name] = value
    return subprocess.run(
        [*POCHTA, *args],
        env=environment,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("args", KEYS_COMMANDS, ids=" ".join)
def test_keys_where_there_is_no_database_names_migrate_and_creates_nothing(
    sqlite_env: Env, tmp_path: Path, args: tuple[str, ...]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The default URL, sqlite:///./var/pochta.db, in a directory that never had one.
    result = run(sqlite_env, *args, cwd=elsewhere, POCHTA_DATABASE_URL="")
    assert result.returncode == 1
    line = one_line(result)
    assert "no database at var/pochta.db" in line
    assert "`pochta migrate`" in line
    assert result.stdout == ""
    assert list(elsewhere.iterdir()) == [], "no file, no var/ directory"


@pytest.mark.parametrize("args", SERVING_COMMANDS, ids=" ".join)
def test_api_worker_scheduler_on_a_missing_sqlite_file_stop_at_start(
    sqlite_env: Env, tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "nowhere" / "pochta.db"
    result = run(sqlite_env, *args, POCHTA_DATABASE_URL=f"sqlite:///{missing}")
    assert result.returncode == 1
    line = one_line(result)
    assert f"no database at {missing}" in line
    assert "`pochta migrate`" in line
    assert not missing.parent.exists()


def downgrade(revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    command.downgrade(config, revision)


def test_keys_on_a_database_without_the_schema_say_it_is_not_migrated(env: Env) -> None:
    downgrade("base")
    result = run(env, "keys", "list")
    assert result.returncode == 1
    assert "is not migrated; run `pochta migrate`" in one_line(result)


@pytest.mark.parametrize("args", SERVING_COMMANDS, ids=" ".join)
def test_api_worker_scheduler_on_a_sqlite_file_without_the_schema_stop_at_start(
    sqlite_env: Env, tmp_path: Path, args: tuple[str, ...]
) -> None:
    # A server database is not checked before they start (it may be coming up beside
    # them; /readyz says when it is not there); a file is there or not.
    empty = tmp_path / "empty.db"
    empty.touch()
    result = run(sqlite_env, *args, POCHTA_DATABASE_URL=f"sqlite:///{empty}")
    assert result.returncode == 1
    assert f"the database at {empty} is not migrated" in one_line(result)


def test_a_database_one_migration_behind_names_migrate(env: Env) -> None:
    downgrade("-1")
    result = run(env, "keys", "list")
    assert result.returncode == 1
    assert "run `pochta migrate`" in one_line(result)


def test_migrate_then_keys_list_works_where_there_was_no_database(
    sqlite_env: Env, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    migrated = run(sqlite_env, "migrate", cwd=elsewhere, POCHTA_DATABASE_URL="")
    assert migrated.returncode == 0, migrated.stderr
    listed = run(sqlite_env, "keys", "list", cwd=elsewhere, POCHTA_DATABASE_URL="")
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("nonsense", "not a database URL"),
        ("nosuchdb://host/db", "unknown kind of database 'nosuchdb'"),
        ("postgresql+psycopg://pochta:hunter2@db:port/pochta", "invalid literal"),
    ],
)
@pytest.mark.parametrize(
    "args", [KEYS_COMMANDS[0], ("migrate",), SERVING_COMMANDS[0]], ids=" ".join
)
def test_a_bad_database_url_is_one_line_naming_the_variable(
    sqlite_env: Env, args: tuple[str, ...], url: str, said: str
) -> None:
    result = run(sqlite_env, *args, POCHTA_DATABASE_URL=url)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("pochta: bad setting: POCHTA_DATABASE_URL: ")
    assert said in line
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize("args", [KEYS_COMMANDS[0], ("migrate",)], ids=" ".join)
def test_a_database_server_that_cannot_be_reached_is_one_line(
    sqlite_env: Env, args: tuple[str, ...]
) -> None:
    url = f"postgresql+psycopg://pochta:hunter2@127.0.0.1:{free_port()}/pochta"
    result = run(sqlite_env, *args, POCHTA_DATABASE_URL=url)
    assert result.returncode == 1
    line = one_line(result)
    assert "cannot use the database at postgresql+psycopg://pochta:***@127.0.0.1:" in line
    assert "POCHTA_DATABASE_URL" in line
    assert "hunter2" not in result.stderr


def test_a_file_that_is_not_a_database_is_one_line(sqlite_env: Env, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, but long enough to have a header to read\n" * 4)
    result = run(sqlite_env, "keys", "list", POCHTA_DATABASE_URL=f"sqlite:///{notes}")
    assert result.returncode == 1
    assert f"cannot use the database at {notes}" in one_line(result)


@pytest.mark.parametrize("url", ["nonsense", "amqp-typo://localhost//"])
def test_a_bad_broker_url_is_one_line_naming_the_variable(sqlite_env: Env, url: str) -> None:
    # A worker used to retry an unknown broker forever, and the API to answer 202.
    result = run(sqlite_env, *SERVING_COMMANDS[1], POCHTA_BROKER_URL=url)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("pochta: bad setting: POCHTA_BROKER_URL: ")
    assert "redis://" in line
