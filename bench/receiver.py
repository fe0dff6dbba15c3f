"""The bench's webhook endpoint: `python -m bench.receiver PORT`, a process of its own.

It answers every POST with 200 and counts them; GET /count says how many. Keep-alive
HTTP/1.1 on asyncio streams, as cheap per request as a receiver can be, so the drain
measures Pochta's side of a webhook and not a slow endpoint's CPU on the same cores.
(harness/webhook_receiver.py, which the tests script and inspect, is a threaded
http.server in the caller's process: about three times the CPU per request.)
"""

from __future__ import annotations

import asyncio
import signal
import sys

HOST = "127.0.0.1"
MAX_HEAD = 64 * 1024

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Counter:
    def __init__(self) -> None:
        self.posts = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEAD:
                    break
                request_line, _, fields = head.partition(b"\r\n")
                length = 0
                for line in fields.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if request_line.startswith(b"GET /count "):
                    body = str(self.posts).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
                    writer.write(body)
                else:
                    self.posts += 1
                    writer.write(_OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


async def main(port: int) -> None:
    counter = Counter()
    server = await asyncio.start_server(counter.serve, HOST, port, limit=MAX_HEAD)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
