"""`pochta dev` run twice: a taken port is one line before anything starts; the key is kept."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.ports import LOOPBACK, free_port, wait_for_port
from tests.conftest import Env

POCHTA = [sys.executable, "-m", "app.cli"]
# Every process `pochta dev` starts inherits its environment, this variable included.
MARK = "DEV_TEST_MARK"


class Dev:
    """The environment, directory and ports of one `pochta dev` set-up, as a user's shell."""

    def __init__(self, sqlite_env: Env, cwd: Path) -> None:
        # The embedded defaults, as `make dev` on a fresh clone: no POCHTA_* of the tests.
        self.env = {
            k: v for k, v in sqlite_env.for_subprocess().items() if not k.startswith("POCHTA_")
        }
        self.env["POCHTA_SCHEDULER_INTERVAL_SECONDS"] = "0.2"
        self.env[MARK] = uuid.uuid4().hex
        self.cwd = cwd
        self.port, self.sink_port, self.bounces_port = free_port(), free_port(), free_port()

    def argv(self) -> list[str]:
        ports = ["--port", str(self.port), "--sink-port", str(self.sink_port)]
        return [*POCHTA, "dev", *ports, "--bounces-port", str(self.bounces_port)]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*POCHTA, *args] if args else self.argv(),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> tuple[subprocess.Popen[str], str]:
        """A running `pochta dev` and what it printed up to its curl line."""
        dev = subprocess.Popen(
            self.argv(),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert dev.stdout is not None
        output = []
        for line in dev.stdout:
            output.append(line)
            if line.startswith("  curl "):
                # The children write to the same pipe: keep it drained, or they would block.
                threading.Thread(target=dev.stdout.read, daemon=True).start()
                return dev, "".join(output)
        self.interrupt(dev)
        pytest.fail("pochta dev printed no curl line:\n" + "".join(output))

    def interrupt(self, dev: subprocess.Popen[str]) -> None:
        """Ctrl-C, as a terminal sends it: SIGINT to dev's process group."""
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=60)
        # dev's children lead groups of their own, so look for them by what they inherited.
        deadline = time.monotonic() + 10
        while self.processes_left() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.processes_left() == [], "Ctrl-C stops every process pochta dev started"

    def processes_left(self) -> list[int]:
        mark = f"{MARK}={self.env[MARK]}".encode()
        left = []
        for entry in Path("/proc").iterdir():
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if mark in environ.split(b"\0") and state != "Z":
                left.append(int(entry.name))
        return left


@pytest.fixture
def dev(sqlite_env: Env, tmp_path: Path) -> Iterator[Dev]:
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    setup = Dev(sqlite_env, workdir)
    yield setup
    for pid in setup.processes_left():  # only if a test failed half-way
        os.kill(pid, signal.SIGKILL)


def printed_key(output: str) -> str:
    key = re.search(r"^API key \(.*\): (pk_\S+)$", output, re.MULTILINE)
    assert key is not None, output
    return key.group(1)


@pytest.mark.parametrize("taken", ["port", "sink_port", "bounces_port"])
def test_a_taken_port_is_one_line_and_nothing_is_started_or_written(dev: Dev, taken: str) -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, getattr(dev, taken)))
        holder.listen()
        result = dev.run()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    option = "--" + taken.replace("_", "-")
    assert f"port {getattr(dev, taken)} " in lines[0]
    assert option in lines[0]
    assert "API key" not in result.stdout
    assert list(dev.cwd.iterdir()) == [], "no database, no key, no sink directory"


def test_a_second_dev_is_refused_and_a_restarted_one_prints_the_same_key(dev: Dev) -> None:
    first, output = dev.start()
    try:
        secret = printed_key(output)
        assert f"  export POCHTA_API_KEY={secret}\n" in output
        assert f"Dashboard: http://{LOOPBACK}:{dev.port}/ui " in output
        second = dev.run()
        assert second.returncode == 1
        (line,) = second.stderr.strip().splitlines()
        assert f"port {dev.port} (the API)" in line
        assert "API key" not in second.stdout
        listed = dev.run("keys", "list").stdout.splitlines()
        assert len(listed) == 1, "the second dev made no key"
        assert first.poll() is None, "the first dev runs on"
        # `pochta bounces` runs too, for the dev bounce domain.
        wait_for_port(LOOPBACK, dev.bounces_port, timeout=30)
        with smtplib.SMTP(LOOPBACK, dev.bounces_port, timeout=30) as bounces:
            bounces.ehlo("mx.example.net")
            bounces.mail("<>")
            assert bounces.rcpt("bounce+x@bounces.localhost")[0] == 250
    finally:
        dev.interrupt(first)
    assert first.returncode == 0

    key_file = dev.cwd / "var" / "dev-api-key"
    assert key_file.read_text().strip() == secret
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    again, output = dev.start()
    try:
        assert printed_key(output) == secret, "a valid dev key is reused"
        assert "the one kept in var/dev-api-key" in output
        assert len(dev.run("keys", "list").stdout.splitlines()) == 1
    finally:
        dev.interrupt(again)


def test_a_revoked_dev_key_is_replaced_by_a_new_one_that_works(dev: Dev) -> None:
    first, output = dev.start()
    dev.interrupt(first)
    revoked = printed_key(output)
    (key_line,) = dev.run("keys", "list").stdout.splitlines()
    assert dev.run("keys", "revoke", key_line.split("\t")[0]).returncode == 0

    again, output = dev.start()
    try:
        secret = printed_key(output)
        assert secret != revoked
        assert "new, kept for the next `pochta dev` in var/dev-api-key" in output
        answer = httpx.get(
            f"http://{LOOPBACK}:{dev.port}/v1/messages",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert answer.status_code == 200
    finally:
        dev.interrupt(again)
    assert (dev.cwd / "var" / "dev-api-key").read_text().strip() == secret
