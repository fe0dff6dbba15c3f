"""The `pochta` command as an operator uses it."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest

from harness.ports import free_port, wait_for_port
from tests.conftest import Env
from tests.support.reports import postfix_dsn

POCHTA = [sys.executable, "-m", "app.cli"]


def pochta(env: Env, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POCHTA, *args],
        env=env.for_subprocess(),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_keys_create_list_revoke(sqlite_env: Env) -> None:
    created = pochta(sqlite_env, "keys", "create", "--tenant", "acme", "--name", "web")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"pk_[A-Za-z0-9_-]{40,}", secret)

    listed = pochta(sqlite_env, "keys", "list")
    (line,) = listed.stdout.strip().splitlines()
    key_id, tenant, name, scope, created_at, state = line.split("\t")
    assert (tenant, name, scope, state) == ("acme", "web", "full", "active")
    assert created_at.endswith("Z")
    assert secret not in listed.stdout, "only the hash is stored"

    assert pochta(sqlite_env, "keys", "revoke", key_id).returncode == 0
    (line,) = pochta(sqlite_env, "keys", "list").stdout.strip().splitlines()
    assert line.split("\t")[-1].startswith("revoked ")
    missing = pochta(sqlite_env, "keys", "revoke", "key_nope")
    assert missing.returncode != 0
    assert "key_nope" in missing.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POCHTA_SMTP_PORT", "smtp"),
        ("POCHTA_SMTP_SECURITY", "ssl"),
        ("POCHTA_RETRY_BASE_SECONDS", "-1"),
        ("POCHTA_MAX_RECIPIENTS", "0"),
    ],
)
def test_a_bad_setting_stops_the_command_with_one_line_naming_it(
    sqlite_env: Env, variable: str, value: str
) -> None:
    sqlite_env.values[variable] = value
    result = pochta(sqlite_env, "keys", "list")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]


def test_a_password_in_clear_to_a_remote_relay_is_refused(sqlite_env: Env) -> None:
    sqlite_env.values.update(
        POCHTA_SMTP_HOST="smtp.example.org",
        POCHTA_SMTP_USERNAME="u",
        POCHTA_SMTP_PASSWORD="s3cret-pw",
    )
    result = pochta(sqlite_env, "migrate")
    assert result.returncode == 2
    assert "POCHTA_SMTP_SECURITY" in result.stderr
    assert "s3cret-pw" not in result.stderr


def test_help_for_every_command(sqlite_env: Env) -> None:
    for command in (
        "api",
        "worker",
        "scheduler",
        "migrate",
        "sink",
        "bounces",
        "dev",
        "keys",
        "send",
    ):
        result = pochta(sqlite_env, command, "--help")
        assert result.returncode == 0
        assert "usage: pochta" in result.stdout


def test_pochta_dev_runs_everything_and_its_curl_line_sends_to_the_sink(
    tmp_path: Path, sqlite_env: Env
) -> None:
    env = {k: v for k, v in sqlite_env.for_subprocess().items() if not k.startswith("POCHTA_")}
    env["POCHTA_SCHEDULER_INTERVAL_SECONDS"] = "0.2"
    port, sink_port, bounces_port = free_port(), free_port(), free_port()
    ports = ["--port", str(port), "--sink-port", str(sink_port)]
    dev = subprocess.Popen(
        [*POCHTA, "dev", *ports, "--bounces-port", str(bounces_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert dev.stdout is not None
    output = []
    try:
        for line in dev.stdout:
            output.append(line)
            if line.startswith("  curl "):
                curl = line.strip()
                break
        else:
            pytest.fail("pochta dev printed no curl line:\n" + "".join(output))
        key = re.search(r"Bearer (pk_\S+)'", curl)
        assert key is not None
        sent = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, check=True)
        message_id = re.search(r'"id":"(msg_\w+)"', sent.stdout)
        assert message_id is not None, sent.stdout
        status = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and status != "sent":
            status = httpx.get(
                f"http://127.0.0.1:{port}/v1/messages/{message_id.group(1)}",
                headers={"Authorization": f"Bearer {key.group(1)}"},
            ).json()["status"]
            time.sleep(0.2)
        assert status == "sent"
        (eml,) = list((tmp_path / "var" / "sink").glob("*.eml"))
        saved = message_from_bytes(eml.read_bytes())
        assert saved["Subject"] == "Hello Billy"

        # It went out with a VERP Return-Path that dev's `pochta bounces` reads reports for.
        verp = saved["Return-Path"].strip("<>")
        assert verp.startswith("bounce+")
        assert verp.endswith("@bounces.localhost")
        report = postfix_dsn(to=verp, recipient="billy@example.org", message_id=saved["Message-ID"])
        wait_for_port("127.0.0.1", bounces_port, timeout=30)
        with smtplib.SMTP("127.0.0.1", bounces_port, timeout=30) as bounces:
            bounces.sendmail("<>", [verp], report)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and status != "bounced":
            status = httpx.get(
                f"http://127.0.0.1:{port}/v1/messages/{message_id.group(1)}",
                headers={"Authorization": f"Bearer {key.group(1)}"},
            ).json()["recipients"][0]["status"]
            time.sleep(0.2)
        assert status == "bounced"
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=60)
    assert dev.returncode == 0
    leftover = subprocess.run(["pgrep", "-s", str(dev.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "Ctrl-C stops every process pochta dev started"
