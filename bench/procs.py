"""The benchmark's processes as /proc sees them: who descends from whom, how much memory.

Starting and stopping them is app/processes.py's job.
"""

from __future__ import annotations

from pathlib import Path


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow the last ')'.
    return int(stat.rpartition(")")[2].split()[1])


def descendants(pid: int) -> list[int]:
    """pid's children, grandchildren and so on, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return sorted(found)


def rss_bytes(pid: int) -> int | None:
    """The process's resident set size (VmRSS), or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None
