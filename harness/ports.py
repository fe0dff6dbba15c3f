"""Loopback TCP ports: one that is free now, and waiting for one to open or close."""

from __future__ import annotations

import itertools
import os
import random
import socket
import time
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"
CLOSE_TIMEOUT = 15.0


# Under pytest-xdist each worker hands out ports of its own slice of this range, in turn
# (below the kernel's ephemeral range, where client sockets get theirs): two workers
# asking the kernel could be given the same port before either listens on it.
_WORKER_PORTS = range(20000, 32000)
_next_in_slice: Iterator[int] | None = None


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now (another process may take it)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return _bindable(0)
    global _next_in_slice
    if _next_in_slice is None:
        _next_in_slice = _slice(int(worker.removeprefix("gw")))
    for candidate in itertools.islice(_next_in_slice, len(_WORKER_PORTS)):
        try:
            return _bindable(candidate)
        except OSError:
            continue
    raise OSError(f"no free port in the slice of pytest-xdist worker {worker}")


def _slice(worker: int) -> Iterator[int]:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    size = len(_WORKER_PORTS) // workers
    first = _WORKER_PORTS.start + worker * size
    ports = list(range(first, first + size))
    start = random.randrange(size)  # a fresh run does not meet the last one's TIME_WAITs
    return itertools.cycle(ports[start:] + ports[:start])


def _bindable(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, port))
        bound: int = sock.getsockname()[1]
        return bound


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until host:port accepts TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not open within {timeout:.1f}s")
        time.sleep(0.05)


def wait_port_closed(host: str, port: int, timeout: float = CLOSE_TIMEOUT) -> None:
    """Block until host:port refuses TCP connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while port_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} still open after {timeout:.1f}s")
        time.sleep(0.05)
