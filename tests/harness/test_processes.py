"""app/processes.py with real child processes: groups stopped whole, children dying with us."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from app.processes import spawn, stop

# Writes its pid to argv[1] once its SIGTERM handling is in place, then waits to be stopped.
IGNORES_SIGTERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write(str(__import__("os").getpid()))
time.sleep(300)
"""
OBEYS_SIGTERM = """
import sys, time
open(sys.argv[1], "w").write(str(__import__("os").getpid()))
time.sleep(300)
"""
# Leaves a grandchild that ignores SIGTERM, then ends on SIGTERM itself.
STARTS_A_STUBBORN_GRANDCHILD = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {IGNORES_SIGTERM!r}, sys.argv[1]])
time.sleep(300)
"""
# Starts a sleeper through spawn(), as `pochta dev` would, then waits to be killed.
SPAWNS_A_CHILD = """
import sys, time
from app.processes import spawn
spawn([sys.executable, "-c", sys.argv[2], sys.argv[1]])
time.sleep(300)
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def pid_written(path: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"no pid in {path} after {timeout}s")


def alive(pid: int) -> bool:
    """Running, not merely a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    stubborn = spawn(python(IGNORES_SIGTERM, str(tmp_path / "stubborn")))
    polite = spawn(python(OBEYS_SIGTERM, str(tmp_path / "polite")))
    pid_written(tmp_path / "stubborn")
    pid_written(tmp_path / "polite")

    started = time.monotonic()
    stop([stubborn, polite], timeout=1)

    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert 1 <= time.monotonic() - started < 10


def test_grandchildren_in_the_group_die_with_it(tmp_path: Path) -> None:
    leader = spawn(python(STARTS_A_STUBBORN_GRANDCHILD, str(tmp_path / "grandchild")))
    grandchild = pid_written(tmp_path / "grandchild")
    assert os.getpgid(grandchild) == leader.pid
    try:
        stop([leader], timeout=1)

        assert leader.returncode == -signal.SIGTERM
        assert not alive(grandchild)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)


def test_output_goes_to_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = spawn(python("import sys; print('out'); print('err', file=sys.stderr)"), log=log)
    child.wait(timeout=20)
    stop([child])
    assert sorted(log.read_text().split()) == ["err", "out"]


def test_a_child_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "orphan"
    parent = subprocess.Popen(
        python(SPAWNS_A_CHILD, str(pidfile), textwrap.dedent(OBEYS_SIGTERM)),
        cwd=Path(__file__).resolve().parents[2],
    )
    child = pid_written(pidfile)
    try:
        assert alive(child)
        parent.kill()
        parent.wait(timeout=10)
        assert gone_within(child, timeout=10)
    finally:
        parent.kill()
        parent.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
