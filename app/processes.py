"""Child processes that each lead a process group of their own, stopped group by group.

Stdlib only and free of Pochta imports: `pochta dev`, the benchmark and the test harness
all start Pochta's processes through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

STOP_TIMEOUT = 30.0
_POLL_SECONDS = 0.05
_KILL_GRACE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[[int, int], int] | None:
    try:
        function: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return function


# Looked up here, not in the child: between fork and exec the child should do as little as
# it can (no dlopen), since another thread of the parent may hold a lock it would need.
_PRCTL = _prctl()


def _die_with_parent() -> None:
    # The kernel sends the signal when the thread that forked the child ends, so spawn()
    # belongs on a thread that lives as long as the children: the main one.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
    new_group: bool = True,
) -> subprocess.Popen[bytes]:
    """Start argv as the leader of a new process group (or, without new_group, in ours:
    a helper that a stop of our group must reach too).

    Its output is appended to log, or goes where this process's goes when log is None.
    With die_with_parent it is sent SIGTERM if this process dies first (Linux), so a
    killed parent leaves no children behind.
    """
    preexec = _die_with_parent if die_with_parent else None
    if log is None:
        return subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=new_group,
            preexec_fn=preexec,  # only calls prctl: see _PRCTL
        )
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_group,
            preexec_fn=preexec,  # only calls prctl: see _PRCTL
        )


def _live_members(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie.

    kill(0) alone would count zombies, and an orphaned grandchild stays one for as long as
    nobody reaps it (a container's init may never), so /proc is read where there is one.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        state, _ppid, group = stat.rpartition(")")[2].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(
    children: Iterable[subprocess.Popen[bytes]],
    *,
    timeout: float = STOP_TIMEOUT,
    sig: int = signal.SIGTERM,
) -> None:
    """Send sig to each child, wait up to timeout for its whole group, SIGKILL what is left.

    The leader is asked first, alone: Celery and uvicorn stop their own pools gracefully,
    and a pool process signalled directly would be reported as killed. Whatever a leader
    leaves behind when it exits is sent sig in turn. Every child must come from spawn():
    its pid is its group's id. Returns once each child is reaped (its returncode set) and
    no group has a live member.
    """
    running = list(children)
    orphans_signalled: set[int] = set()
    for child in running:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in running:
            # poll() reaps the leader, which would otherwise stay a live-looking zombie.
            if child.poll() is not None and child.pid not in orphans_signalled:
                orphans_signalled.add(child.pid)
                if _live_members(child.pid):
                    _signal_group(child.pid, sig)
        if not any(_live_members(child.pid) for child in running):
            break
        time.sleep(_POLL_SECONDS)
    for child in running:
        if child.poll() is None or _live_members(child.pid):
            _signal_group(child.pid, signal.SIGKILL)
    for child in running:
        child.wait()
    # SIGKILL is delivered at once, yet a grandchild is gone only once the kernel is done.
    killed_by = time.monotonic() + _KILL_GRACE_SECONDS
    while any(_live_members(child.pid) for child in running) and time.monotonic() < killed_by:
        time.sleep(_POLL_SECONDS)
