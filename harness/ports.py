"""Loopback TCP ports: one that is free now, and waiting for one to open or close."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"
CLOSE_TIMEOUT = 15.0


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now (another process may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


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
