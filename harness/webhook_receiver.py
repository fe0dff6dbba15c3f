"""A real HTTP receiver on 127.0.0.1 for webhook tests, scriptable per path.

Each path answers from its own script, in order (a status, a status with headers, or HANG:
never answer), then with its default; every request is kept with its headers and body.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


# Take the request and say nothing until the receiver stops (a dead endpoint).
HANG = Answer(status=0)


@dataclass(frozen=True)
class Request:
    """One request the receiver took, whatever it answered."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    answered: int  # 0: never answered
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A threaded http.server in the background that answers as scripted, recording all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._defaults: dict[str, Answer] = {}
        self._requests: list[Request] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", host: str = HOST) -> str:
        return f"http://{host}:{self.port}{path}"

    def script(self, path: str, *answers: int | Answer) -> None:
        """Answer path's next requests with these, in order."""
        with self._lock:
            self._scripts[path].extend(
                a if isinstance(a, Answer) else Answer(status=a) for a in answers
            )

    def default(self, path: str, answer: int | Answer) -> None:
        """What path answers once its script is used up (200 unless set)."""
        with self._lock:
            self._defaults[path] = answer if isinstance(answer, Answer) else Answer(status=answer)

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def wait_for(
        self,
        condition: Callable[[list[Request]], bool],
        timeout: float = 60.0,
        path: str | None = None,
    ) -> list[Request]:
        """Wait until condition holds for path's requests; them, or AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests(path)
            if condition(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; {len(seen)} requests so far")
            time.sleep(0.05)

    def _next_answer(self, path: str) -> Answer:
        with self._lock:
            script = self._scripts[path]
            return script.popleft() if script else self._defaults.get(path, Answer())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The status line, headers and body leave in one write, flushed after each
            # request: written apart, Nagle held the body back for the client's delayed
            # ACK, 40 ms a request.
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                answer = receiver._next_answer(self.path)
                request = Request(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    answered=answer.status,
                    at=time.monotonic(),
                )
                with receiver._lock:
                    receiver._requests.append(request)
                if answer is HANG or answer.status == 0:
                    receiver._stopping.wait()
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads requests(), not a log

        return Handler

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def release(self) -> None:
        """Let every hanging request end (its connection closes unanswered)."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
