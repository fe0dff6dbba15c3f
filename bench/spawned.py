"""Helper processes of the benchmark itself (load generators, smtplib loops): spawn, collect."""

from __future__ import annotations

import multiprocessing
import queue
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Spawned processes import afresh: this is their head start before a common start time.
HEAD_START_SECONDS = 1.0


def _child(target: Callable[..., None], *args: Any) -> None:
    # Ctrl-C reaches the whole foreground group; the benchmark itself ends its helpers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target(*args)


class Helpers(Generic[T]):
    """Processes each running target(*args, results) and putting one result on the queue."""

    def __init__(self, target: Callable[..., None], args: Sequence[tuple[Any, ...]]) -> None:
        context = multiprocessing.get_context("spawn")
        self.results: multiprocessing.Queue[T] = context.Queue()
        self.processes: list[BaseProcess] = [
            context.Process(target=_child, args=(target, *a, self.results), daemon=True)
            for a in args
        ]
        for process in self.processes:
            process.start()

    def collect(self, deadline: float, what: str) -> list[T]:
        """Every process's result (by time.monotonic() deadline); the processes are then gone."""
        try:
            results = [self._next(deadline, what) for _ in self.processes]
        except BaseException:
            self.end(grace=0.0)
            raise
        self.end()
        return results

    def _next(self, deadline: float, what: str) -> T:
        while time.monotonic() < deadline:
            try:
                return self.results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.exitcode for p in self.processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a {what} process died (exit {dead})") from None
        raise RuntimeError(f"the {what} processes did not report in time")

    def running(self) -> bool:
        """Whether a process is still at work (result not yet on the queue)."""
        return any(process.is_alive() for process in self.processes) and self.results.empty()

    def end(self, grace: float = 5.0) -> None:
        """Wait up to grace seconds for each process, then kill what is still running."""
        for process in self.processes:
            process.join(timeout=grace)
            if process.is_alive():
                process.kill()
                process.join()
