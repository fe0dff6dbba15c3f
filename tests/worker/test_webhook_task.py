"""The webhook task's shared parts: one HTTP transport for all of the pool's threads."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from app.config import Settings
from app.webhooks.requests import new_transport
from worker import webhooks


def test_the_pools_first_tasks_together_make_one_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[httpx.BaseTransport] = []

    def slow_to_make(settings: Settings) -> httpx.BaseTransport:
        # As a CA bundle loading takes: long enough for every thread to arrive meanwhile.
        time.sleep(0.05)
        transport = new_transport(settings)
        made.append(transport)
        return transport

    monkeypatch.setattr(webhooks, "new_transport", slow_to_make)
    webhooks._made_once.cache_clear()
    start = threading.Barrier(20)
    got: list[httpx.BaseTransport] = []

    def first_task() -> None:
        start.wait()
        got.append(webhooks._transport())

    threads = [threading.Thread(target=first_task) for _ in range(20)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(made) == 1
        assert {id(transport) for transport in got} == {id(made[0])}
    finally:
        for transport in made:
            transport.close()
        webhooks._made_once.cache_clear()
