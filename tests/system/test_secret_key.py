"""POCHTA_SECRET_KEY (SPEC §9): made in var/secret.key (0600) at the embedded mode's first
start and kept; required, in one line, with PostgreSQL."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from app import processes
from harness.ports import LOOPBACK, free_port, wait_for_port
from tests.conftest import SHARED_POSTGRES, Env

POCHTA = [sys.executable, "-m", "app.cli"]


def without_secret(env: Env) -> dict[str, str]:
    environment = env.for_subprocess()
    environment.pop("POCHTA_SECRET_KEY")
    return environment


def test_the_embedded_mode_makes_a_private_key_file_at_first_start_and_keeps_it(
    sqlite_env: Env, tmp_path: Path
) -> None:
    environment = without_secret(sqlite_env)
    port = free_port()
    api = processes.spawn(
        [*POCHTA, "api", "--port", str(port)],
        env=environment,
        cwd=tmp_path,
        log=tmp_path / "api.log",
    )
    try:
        wait_for_port(LOOPBACK, port, timeout=30)
        key_file = tmp_path / "var" / "secret.key"
        assert key_file.is_file(), (tmp_path / "api.log").read_text()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        first = key_file.read_bytes()
        assert len(first.strip()) >= 32
    finally:
        processes.stop([api])

    again = subprocess.run(
        [*POCHTA, "migrate"], env=environment, cwd=tmp_path, capture_output=True, check=False
    )
    assert again.returncode == 0, again.stderr
    assert key_file.read_bytes() == first


def test_postgresql_without_a_secret_key_stops_with_one_line(
    sqlite_env: Env, tmp_path: Path
) -> None:
    environment = without_secret(sqlite_env)
    environment["POCHTA_DATABASE_URL"] = SHARED_POSTGRES
    result = subprocess.run(
        [*POCHTA, "api", "--port", str(free_port())],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pochta: bad setting: POCHTA_SECRET_KEY is required with a database other than "
        "SQLite (every host of the deployment must share it)"
    ]
    assert not (tmp_path / "var").exists()
