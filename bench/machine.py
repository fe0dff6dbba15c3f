"""What the results were measured on: machine, code version, database settings, load."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _cpuinfo(field: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == field:
                return value.strip()
    except OSError:
        pass
    return "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def describe() -> str:
    """One line: CPUs, model, memory, Python."""
    return (
        f"{os.cpu_count()} CPUs ({_cpuinfo('model name')}), {_memory_gib():.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def code_version() -> str:
    """The commit, and whether the working tree differs from it."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
