"""A body many times over the caps costs the API process little, and others stay served."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from harness.stack import Stack
from tests.conftest import Env, make_key
from tests.support.flow import submit

GOOD = {"from": "a@example.org", "to": ["b@example.org"], "text": "x"}
# What once took 15 s to refuse and stalled every other call of the process for 12 s.
EMPTY_ATTACHMENT = {"filename": "a.pdf", "content": ""}
HOSTILE = orjson.dumps({**GOOD, "attachments": [EMPTY_ATTACHMENT] * 150_000})


def latencies(client: httpx.Client, path: str, count: int) -> list[float]:
    taken = []
    for _ in range(count):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        taken.append(time.perf_counter() - started)
    return taken


@pytest.mark.serial  # it compares latencies: alone, not beside other tests
def test_other_requests_stay_fast_while_hostile_bodies_are_refused(
    sqlite_env: Env, tmp_path: Path
) -> None:
    key = make_key()
    path = f"/v1/messages/{submit()}"
    with Stack(sqlite_env.for_subprocess(), tmp_path) as stack:
        stack.start("api")
        with stack.client(key) as client:
            latencies(client, path, 5)  # warm up
            idle = statistics.median(latencies(client, path, 20))

            refusals: list[float] = []
            stop = threading.Event()

            def attack() -> None:
                headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
                with httpx.Client(base_url=stack.url, timeout=60) as attacker:
                    while not stop.is_set():
                        started = time.perf_counter()
                        response = attacker.post("/v1/messages", content=HOSTILE, headers=headers)
                        assert response.status_code == 422
                        refusals.append(time.perf_counter() - started)

            attacker = threading.Thread(target=attack)
            attacker.start()
            try:
                time.sleep(0.2)
                loaded = latencies(client, path, 40)
            finally:
                stop.set()
                attacker.join()

    assert refusals, "the attacker got no answer"
    # Each refusal is cheap: a handful of idle requests, not seconds of work.
    assert max(refusals) < 1.0, refusals
    # The parse of the hostile JSON still holds the event loop for a moment; a request
    # waits for at most one of those, never for the per-item work of 150,000 items.
    assert statistics.median(loaded) < 30 * max(idle, 0.002), (idle, loaded)
    assert max(loaded) < max(refusals) + 50 * idle, (idle, loaded, refusals)
