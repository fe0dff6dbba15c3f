"""Optional (`--profile`): py-spy attached to a process group during a phase, and a summary.

py-spy is not a dependency of Pochta or of the benchmark; `--profile` needs it installed
(`.venv/bin/pip install py-spy`) and the right to ptrace (root, or ptrace_scope 0).
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

RATE = 100  # samples per second: enough for a phase of seconds, cheap for the target
_LINE_NUMBER = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    """py-spy beside this Python (the venv) or on PATH; None when not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, output: Path, *, wall_clock: bool) -> Iterator[None]:
    """Sample pid and its subprocesses while the block runs; collapsed stacks to output.

    wall_clock counts waiting threads too (where a worker's time goes, I/O included);
    otherwise only the thread holding the GIL (where a threaded API burns its CPU).
    """
    binary = py_spy()
    if binary is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    mode = ["--idle"] if wall_clock else ["--gil"]
    argv = [binary, "record", "--pid", str(pid), "--subprocesses", "--rate", str(RATE)]
    argv += [*mode, "--nonblocking", "--format", "raw", "--output", str(output)]
    with output.with_suffix(".log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        # SIGINT makes py-spy stop sampling and write what it has.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Where a sample's time goes: the first frame from the leaf up that matches decides.
CATEGORIES = (
    ("psycopg/", "PostgreSQL round trips (psycopg, waiting included)"),
    ("sqlalchemy/", "SQLAlchemy (ORM unit of work, compile, result rows)"),
    ("smtplib.py", "SMTP session (smtplib, waiting included)"),
    ("email_validator/", "address checks (email_validator)"),
    ("email/", "MIME build (email package)"),
    ("pydantic", "pydantic (validation, serialisation)"),
    ("kombu/", "Celery / kombu / Redis"),
    ("celery/", "Celery / kombu / Redis"),
    ("billiard/", "Celery / kombu / Redis"),
    ("redis/", "Celery / kombu / Redis"),
    ("prometheus_client/", "Prometheus counters"),
    ("orjson", "JSON"),
    ("json/", "JSON"),
    ("uvicorn/", "HTTP server and framework (uvicorn, h11, starlette, fastapi, anyio)"),
    ("h11/", "HTTP server and framework (uvicorn, h11, starlette, fastapi, anyio)"),
    ("starlette/", "HTTP server and framework (uvicorn, h11, starlette, fastapi, anyio)"),
    ("fastapi/", "HTTP server and framework (uvicorn, h11, starlette, fastapi, anyio)"),
    ("anyio/", "HTTP server and framework (uvicorn, h11, starlette, fastapi, anyio)"),
    ("asyncio/", "HTTP server and framework (uvicorn, h11, starlette, fastapi, anyio)"),
    ("(app/", "Pochta's own code"),
    ("(worker/", "Pochta's own code"),
)
# A leaf here is a thread or process with nothing to do: not part of where time goes.
IDLE = (
    "Condition.wait (threading.py)",
    "_epoll.poll (kombu/utils/eventio.py)",
    "EpollSelector.select (selectors.py)",
    "Connection._recv (billiard/connection.py)",
    "Connection.poll (billiard/connection.py)",
)


def _frame(frame: str) -> str:
    return _LINE_NUMBER.sub(")", frame)


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for fragment, name in CATEGORIES:
            if fragment in frame:
                return name
    return "other (stdlib, imports, interpreter)"


def _samples(raw: Path) -> Iterator[tuple[list[str], int]]:
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield [_frame(f) for f in stack.split(";")], int(count_text)


def _share(counter: collections.Counter[str], total: int, top: int) -> list[str]:
    return [f"  {100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]


def summarize(raw: Path, top: int = 20) -> str:
    """Where the busy samples go, by category and by Pochta function (inclusive)."""
    categories: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for frames, count in _samples(raw):
        if frames[-1] in IDLE:
            idle += count
            continue
        busy += count
        categories[_category(frames)] += count
        for name in {f for f in frames if "(app/" in f or "(worker/" in f}:
            ours[name] += count
    if not busy:
        return f"{raw.name}: no busy samples\n"
    lines = [f"{raw.name}: {busy} busy samples ({idle} idle left out)", "by category:"]
    lines += _share(categories, busy, top)
    lines.append("Pochta functions (inclusive):")
    lines += _share(ours, busy, top)
    return "\n".join(lines) + "\n"
