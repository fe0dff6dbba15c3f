"""`pochta relays`, and a bad relays file stopping every command at start (SPEC §10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.clock import utcnow
from app.config import get_settings
from app.messages.relay_results import Reply
from app.relays.config import get_relays
from app.relays.state import store_for
from tests.conftest import Env

POCHTA = [sys.executable, "-m", "app.cli"]

FILE = """
[relays.primary]
host = "127.0.0.1"
port = 2601
rate = "30/min"
max_connections = 3

[relays.backup]
host = "127.0.0.1"
port = 2602

[[routes]]
relays = ["primary", "backup"]
"""


def pochta(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POCHTA, *args],
        env=env.for_subprocess(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [("worker",), ("api",), ("relays",), ("sink",)])
def test_a_bad_relays_file_stops_every_command_with_one_line_naming_the_key(
    sqlite_env: Env, tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "relays.toml"
    path.write_text(FILE.replace("port = 2602", 'port = "smtp"'))
    sqlite_env["POCHTA_RELAYS_FILE"] = str(path)
    done = pochta(sqlite_env, *command)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"pochta: bad relays file {path}: relays.backup.port:")


def test_pochta_relays_prints_state_rate_and_sessions(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "relays.toml"
    path.write_text(FILE)
    env["POCHTA_RELAYS_FILE"] = str(path)
    settings = get_settings()
    relays = get_relays(settings)
    store = store_for(settings)
    now = utcnow()
    reply = Reply.parse(421, "4.7.0 Too many connections")
    store.rate_limited(
        relays.by_name["primary"], now=now, until=now.replace(year=now.year + 1), reason=str(reply)
    )
    assert store.take_session("primary", "worker-a", limit=3, until=now.replace(year=now.year + 1))
    done = pochta(env, "relays")
    assert done.returncode == 0, done.stderr
    header, primary, backup, why = done.stdout.strip().splitlines()
    assert header.split() == ["NAME", "HOST:PORT", "STATE", "RATE", "SESSIONS"]
    assert primary.split()[:4] == ["primary", "127.0.0.1:2601", "paused", "until"]
    assert "15/min" in primary, "30/min halved"
    assert primary.split()[-3:] == ["1", "(max", "3)"]
    assert backup.split() == ["backup", "127.0.0.1:2602", "up", "unlimited", "0"]
    assert why == "primary: 421 4.7.0 Too many connections"
