"""A real, scriptable ESMTP relay on 127.0.0.1 for tests, built on aiosmtpd."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
HOSTNAME = "relay.pochta.test"

# "452 4.5.3 text" -> "452 text" when the relay does not announce ENHANCEDSTATUSCODES.
_ENHANCED = re.compile(r"^(\d{3})([ -])\d\.\d{1,3}\.\d{1,3} ")


@dataclass
class Received:
    """One message the relay accepted (it replied 2xx to the final dot)."""

    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    data: bytes
    connection: int
    # time.monotonic() when the relay accepted it (not part of what was received).
    at: float = field(default=0.0, compare=False)
    # time.monotonic() of its MAIL command: where a relay counts its rate, and what comes
    # right after the sender took its send slot (the DATA end adds the transfer's jitter).
    mail_at: float = field(default=0.0, compare=False)


class _Verbatim(str):
    """A reply the test scripted: sent exactly as written."""


def _positive(reply: str) -> bool:
    return reply.startswith("2")


class ScriptedRelay:
    """An ESMTP server in a background thread that answers as scripted and records everything."""

    host: str = HOST
    port: int = 0

    def __init__(
        self,
        *,
        size: int | None = None,
        eightbitmime: bool = True,
        smtputf8: bool = True,
        enhanced_status_codes: bool = True,
        extra_ehlo: Sequence[str] = (),
        rcpt_limit: int | None = None,
        auth: Mapping[str, str] | None = None,
        auth_mechanisms: Sequence[str] = ("PLAIN", "LOGIN"),
        tls_context: ssl.SSLContext | None = None,
        auth_requires_tls: bool = False,
        implicit_tls: bool = False,
        ehlo_refused: bool = False,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs tls_context")
        self.size = size
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.enhanced_status_codes = enhanced_status_codes
        self.extra_ehlo = tuple(extra_ehlo)
        self.rcpt_limit = rcpt_limit
        self.auth = dict(auth) if auth is not None else None
        # What EHLO announces: a client picks among these (smtplib prefers PLAIN to LOGIN).
        self.auth_mechanisms = tuple(auth_mechanisms)
        self.tls_context = tls_context
        self.auth_requires_tls = auth_requires_tls
        self.implicit_tls = implicit_tls
        self.ehlo_refused = ehlo_refused
        self.stall_after_data = 0.0
        self.drop_during_data = False
        # Close a connection (no 421, as relays capping messages per connection do) once it
        # has had this many messages accepted.
        self.close_after_messages: int | None = None
        # (count, seconds): a MAIL past `count` accepted in the last `seconds` gets a 454,
        # as SES answers past its sending rate.
        self.throttle: tuple[int, float] | None = None
        self.throttle_reply = "454 4.7.0 Throttling failure: Maximum sending rate exceeded"
        self._mail_times: collections.deque[float] = collections.deque()
        self._throttled = 0
        self._peak_sessions = 0
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._commands: list[tuple[int, str]] = []
        self._connections = 0
        self._greetings: collections.deque[str] = collections.deque()
        self._mail: collections.deque[str] = collections.deque()
        self._data: collections.deque[str] = collections.deque()
        self._rcpt: dict[str, collections.deque[str]] = {}
        self._failures: list[list[Any]] = []  # [VERB, occurrences still to let through, reply]
        self._controller: _Controller | None = None
        self._accepting = False
        self._sessions: set[_RelaySMTP] = set()  # touched only on the relay's loop

    # lifecycle

    def start(self) -> None:
        """Listen on 127.0.0.1 (a free port first, the same one on a restart) in a thread."""
        if self._controller is not None:
            raise RuntimeError("relay already started")
        implicit = self.tls_context if self.implicit_tls else None
        controller = _Controller(
            self,
            ssl_context=implicit,
            server_hostname=HOSTNAME,
            decode_data=False,
            # Sizes, 8BITMIME and SMTPUTF8 are policed in the handler so that replies and
            # EHLO lines follow the relay's settings, not aiosmtpd's defaults.
            data_size_limit=None,
            enable_SMTPUTF8=True,
            tls_context=None if self.implicit_tls else self.tls_context,
            # aiosmtpd cannot tell an implicit-TLS socket is encrypted, so it would refuse AUTH.
            auth_require_tls=self.auth_requires_tls and not self.implicit_tls,
            authenticator=self._authenticate,
            ready_timeout=10.0,
        )
        # Controller.start() opens a probe connection of its own; it must not count.
        self._accepting = False
        controller.start()
        self._accepting = True
        self._controller = controller
        self.port = controller.port

    def stop(self) -> None:
        """Hang up on every client (even one mid-stall), then stop the thread."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        hang_up = asyncio.run_coroutine_threadsafe(self._hang_up_all(controller), controller.loop)
        # Stopping must go on even if the loop is wedged.
        with contextlib.suppress(Exception):
            hang_up.result(timeout=5)
        controller.stop()

    def reload(self, **settings: Any) -> None:
        """Take new settings and close every client connection, keeping the port: a reload."""
        for name, value in settings.items():
            if not hasattr(self, name) or name.startswith("_"):
                raise AttributeError(f"ScriptedRelay has no setting {name!r}")
            setattr(self, name, value)
        controller = self._controller
        if controller is None:
            return
        hang_up = asyncio.run_coroutine_threadsafe(self._hang_up_clients(), controller.loop)
        hang_up.result(timeout=5)

    async def _hang_up_clients(self) -> None:
        for session in list(self._sessions):
            session.hang_up()
        for _ in range(3):
            await asyncio.sleep(0)

    async def _hang_up_all(self, controller: _Controller) -> None:
        if controller.server is not None:
            controller.server.close()
        for session in list(self._sessions):
            session.hang_up(abort=True)
        # Let connection_lost() run so every session task ends before the loop stops.
        for _ in range(3):
            await asyncio.sleep(0)

    def __enter__(self) -> ScriptedRelay:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # scripting

    def script_connect(self, *replies: str) -> None:
        """Queue greetings for the next connections; a non-2xx one is sent and the socket closed."""
        with self._cond:
            self._greetings.extend(replies)

    def script_mail(self, *replies: str) -> None:
        """Queue replies to the next MAIL commands."""
        with self._cond:
            self._mail.extend(replies)

    def script_rcpt(self, address: str, *replies: str) -> None:
        """Queue replies to the next RCPT TO:<address> (matched case-insensitively)."""
        with self._cond:
            self._rcpt.setdefault(address.lower(), collections.deque()).extend(replies)

    def script_data(self, *replies: str) -> None:
        """Queue replies to the final dot of the next messages; non-2xx means not recorded."""
        with self._cond:
            self._data.extend(replies)

    def fail_command(self, verb: str, reply: str, *, after: int = 0) -> None:
        """Answer reply to the (after+1)-th next occurrence of verb; a 421 also hangs up."""
        with self._cond:
            self._failures.append([verb.upper(), after, reply])

    # recording

    @property
    def messages(self) -> list[Received]:
        """Snapshot of the messages accepted so far."""
        with self._cond:
            return list(self._messages)

    @property
    def commands(self) -> list[tuple[int, str]]:
        """Snapshot of (connection, command line exactly as received) so far."""
        with self._cond:
            return list(self._commands)

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted so far."""
        with self._cond:
            return self._connections

    @property
    def peak_sessions(self) -> int:
        """The most client connections that were open at the same time."""
        with self._cond:
            return self._peak_sessions

    @property
    def throttled(self) -> int:
        """How many MAIL commands got the throttle's 454."""
        with self._cond:
            return self._throttled

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least count messages are recorded; AssertionError if they do not come."""
        with self._cond:
            if self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                return list(self._messages)
            got = [(m.connection, m.mail_from, m.rcpt_tos) for m in self._messages]
            raise AssertionError(
                f"expected {count} message(s) within {timeout}s, got {len(got)}: {got}; "
                f"last commands: {self._commands[-20:]}"
            )

    def reset(self) -> None:
        """Forget recordings (connection numbers restart at 1), scripts, stalls and drops."""
        with self._cond:
            self._messages.clear()
            self._commands.clear()
            self._connections = 0
            self._greetings.clear()
            self._mail.clear()
            self._data.clear()
            self._rcpt.clear()
            self._failures.clear()
        self.stall_after_data = 0.0
        self.drop_during_data = False
        self.close_after_messages = None
        self.throttle = None
        with self._cond:
            self._mail_times.clear()
            self._throttled = 0
            self._peak_sessions = 0

    # called from the relay's loop

    def _session_opened(self, session: _RelaySMTP) -> None:
        self._sessions.add(session)
        with self._cond:
            # Controller.start()'s probe (connection 0) is not a client.
            clients = sum(1 for open_session in self._sessions if open_session.connection)
            self._peak_sessions = max(self._peak_sessions, clients)

    def _over_throttle(self) -> bool:
        """Whether this MAIL goes past the throttle; counted as accepted if not."""
        if self.throttle is None:
            return False
        count, seconds = self.throttle
        now = time.monotonic()
        with self._cond:
            while self._mail_times and self._mail_times[0] <= now - seconds:
                self._mail_times.popleft()
            if len(self._mail_times) >= count:
                self._throttled += 1
                return True
            self._mail_times.append(now)
            return False

    def _open_connection(self) -> int:
        if not self._accepting:
            return 0
        with self._cond:
            self._connections += 1
            return self._connections

    def _record_command(self, connection: int, line: bytes) -> None:
        text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
        with self._cond:
            self._commands.append((connection, text))

    def _record_message(self, message: Received) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def _take_greeting(self) -> str | None:
        with self._cond:
            return self._greetings.popleft() if self._greetings else None

    def _take_mail(self) -> str | None:
        with self._cond:
            return self._mail.popleft() if self._mail else None

    def _take_rcpt(self, address: str) -> str | None:
        with self._cond:
            queue = self._rcpt.get(address.lower())
            return queue.popleft() if queue else None

    def _take_data(self) -> str | None:
        with self._cond:
            return self._data.popleft() if self._data else None

    def _take_failure(self, verb: str) -> str | None:
        with self._cond:
            due = None
            for failure in list(self._failures):
                if failure[0] != verb:
                    continue
                if failure[1] > 0:
                    failure[1] -= 1
                elif due is None:
                    due = failure[2]
                    self._failures.remove(failure)
            return due

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = data.login.decode("utf-8", errors="replace")
        password = data.password.decode("utf-8", errors="replace")
        ok = self.auth is not None and self.auth.get(login) == password
        return AuthResult(success=ok, handled=False)


class _Handler:
    """aiosmtpd hooks: EHLO lines, envelope policy, scripted replies and message recording."""

    def __init__(self, relay: ScriptedRelay) -> None:
        self.relay = relay

    async def handle_EHLO(
        self, server: _RelaySMTP, session: Session, envelope: Envelope, hostname: str, _: Any
    ) -> list[str]:
        relay = self.relay
        # With a handle_EHLO hook aiosmtpd leaves recording the greeting to us.
        session.host_name = hostname
        lines = [server.hostname]
        if relay.size:
            lines.append(f"SIZE {relay.size}")
        if relay.eightbitmime:
            lines.append("8BITMIME")
        if relay.smtputf8:
            lines.append("SMTPUTF8")
        lines.append("PIPELINING")
        if relay.enhanced_status_codes:
            lines.append("ENHANCEDSTATUSCODES")
        if relay.tls_context is not None and not server.encrypted:
            lines.append("STARTTLS")
        if relay.auth is not None and (server.encrypted or not relay.auth_requires_tls):
            lines.append(" ".join(("AUTH", *relay.auth_mechanisms)))
        lines.extend(relay.extra_ehlo)
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    async def handle_MAIL(
        self,
        server: _RelaySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        server.mail_at = time.monotonic()
        relay = self.relay
        if relay.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        smtputf8 = "SMTPUTF8" in options
        if smtputf8 and not relay.smtputf8:
            return "555 5.5.4 SMTPUTF8 not supported"
        if not address.isascii() and not smtputf8:
            return "553 5.6.7 Non-ASCII address needs SMTPUTF8"
        if "BODY=8BITMIME" in options and not relay.eightbitmime:
            return "555 5.5.4 BODY=8BITMIME not supported"
        declared = next((int(o[5:]) for o in options if o.startswith("SIZE=")), 0)
        if relay.size and declared > relay.size:
            return "552 5.3.4 Message size exceeds fixed maximum message size"
        reply = relay._take_mail()
        if reply is not None and not _positive(reply):
            return _Verbatim(reply)
        if reply is None and relay._over_throttle():
            return _Verbatim(relay.throttle_reply)
        # A hook that answers must fill the envelope itself.
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return _Verbatim(reply) if reply is not None else "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: _RelaySMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        relay = self.relay
        if not address.isascii() and not envelope.smtp_utf8:
            return "553 5.6.7 Non-ASCII address needs SMTPUTF8"
        reply = relay._take_rcpt(address)
        if reply is not None and not _positive(reply):
            return _Verbatim(reply)
        limit = relay.rcpt_limit
        if reply is None and limit is not None and len(envelope.rcpt_tos) >= limit:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return _Verbatim(reply) if reply is not None else "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: _RelaySMTP, session: Session, envelope: Envelope) -> str:
        relay = self.relay
        if relay.drop_during_data:
            server.hang_up()
            # connection_lost() cancels this task; until then say nothing.
            await asyncio.get_running_loop().create_future()
        if relay.stall_after_data > 0:
            await asyncio.sleep(relay.stall_after_data)
        data = bytes(envelope.original_content or b"")
        if relay.size and len(data) > relay.size:
            return "552 5.3.4 Message size exceeds fixed maximum message size"
        reply = relay._take_data()
        if reply is not None and not _positive(reply):
            return _Verbatim(reply)
        # aiosmtpd keeps the null reverse-path as "<>"; it is the empty address.
        mail_from = envelope.mail_from or ""
        relay._record_message(
            Received(
                mail_from="" if mail_from == "<>" else mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                mail_options=list(envelope.mail_options),
                data=data,
                connection=server.connection,
                at=time.monotonic(),
                mail_at=server.mail_at,
            )
        )
        server.accepted += 1
        if relay.close_after_messages is not None:
            server.hang_up_after_reply = server.accepted >= relay.close_after_messages
        return _Verbatim(reply) if reply is not None else "250 2.0.0 Message accepted"


class _Session(Session):
    """aiosmtpd's Session without the deprecation warning its own AUTH code logs every time."""

    login_data: Any = None


class _RelaySMTP(SMTP):
    """One connection: numbered, command lines recorded, greetings and failures scripted."""

    def __init__(self, handler: _Handler, relay: ScriptedRelay, **kwargs: Any) -> None:
        self.relay = relay
        self.connection = 0
        self.hung_up = False
        self.accepted = 0
        self.hang_up_after_reply = False
        self.mail_at = 0.0
        self._greeting: str | None = None
        self._in_auth_exchange = False
        super().__init__(handler, **kwargs)
        # aiosmtpd keeps command_size_limits on the class and clear()s it per connection;
        # a per-connection copy keeps parallel relays out of each other's way.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._guarded(verb, method)

    def _create_session(self) -> Session:
        return _Session(self.loop)

    @property
    def encrypted(self) -> bool:
        """Whether this connection runs over TLS (implicit or after STARTTLS)."""
        return self.transport is not None and bool(self.transport.get_extra_info("sslcontext"))

    def hang_up(self, *, abort: bool = False) -> None:
        """Close the connection; later replies are dropped."""
        self.hung_up = True
        transport = self.transport
        if abort and isinstance(transport, asyncio.Transport):
            transport.abort()
        elif transport is not None:
            transport.close()

    def _guarded(
        self, verb: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        @functools.wraps(method)
        async def guarded(arg: str | None) -> None:
            if self.hung_up:
                return
            reply = self.relay._take_failure(verb)
            if reply is None:
                await method(arg)
            else:
                await self.push(_Verbatim(reply))

        return guarded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.connection == 0 and self._original_transport is None:
            self.connection = self.relay._open_connection()
            self.relay._session_opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.relay._sessions.discard(self)
        super().connection_lost(error)

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super()._cb_client_connected(reader, writer)
        read_until = reader.readuntil

        async def recording_readuntil(separator: Any = b"\n") -> bytes:
            line = await read_until(separator)
            # aiosmtpd reads command lines with the default separator and message content
            # with b"\r\n"; AUTH continuation lines are answers, not commands.
            if separator == b"\n" and not self._in_auth_exchange and self.connection:
                self.relay._record_command(self.connection, line)
            return line

        reader.readuntil = recording_readuntil  # type: ignore[method-assign]

    async def challenge_auth(self, *args: Any, **kwargs: Any) -> Any:
        self._in_auth_exchange = True
        try:
            return await super().challenge_auth(*args, **kwargs)
        finally:
            self._in_auth_exchange = False

    async def _handle_client(self) -> None:
        greeting = self.relay._take_greeting() if self.connection else None
        if greeting is not None and not _positive(greeting):
            await self.push(_Verbatim(greeting))
            self.hang_up()
            return
        self._greeting = greeting
        await super()._handle_client()

    async def push(self, status: AnyStr) -> None:
        if self.hung_up:
            return
        if isinstance(status, bytes):
            await super().push(status)
            return
        reply = str(status)
        if self._greeting is not None:
            # The first push of a session is aiosmtpd's own 220 greeting.
            reply, self._greeting = self._greeting, None
        elif not isinstance(status, _Verbatim) and not self.relay.enhanced_status_codes:
            reply = _ENHANCED.sub(r"\1\2", reply)
        await super().push(reply)
        if reply.startswith("421") or self.hang_up_after_reply:
            self.hang_up()

    async def smtp_EHLO(self, hostname: str) -> None:
        if self.relay.ehlo_refused:
            await self.push("502 5.5.1 EHLO not supported, use HELO")
            return
        await super().smtp_EHLO(hostname)

    async def smtp_AUTH(self, arg: str) -> None:
        if self.relay.auth is None:
            await self.push("502 5.5.1 AUTH not supported")
            return
        await super().smtp_AUTH(arg)


class _Controller(Controller):
    """aiosmtpd's threaded Controller, bound to a free port and making _RelaySMTP sessions."""

    def __init__(self, relay: ScriptedRelay, **kwargs: Any) -> None:
        self.relay = relay
        super().__init__(_Handler(relay), hostname=HOST, port=0, **kwargs)

    def factory(self) -> _RelaySMTP:
        return _RelaySMTP(self.handler, self.relay, **self.SMTP_kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.relay.port, ssl=self.ssl_context
        )
        # Controller's probe connection (and our callers) need the port the OS picked.
        self.port = server.sockets[0].getsockname()[1]
        return server


def make_tls_contexts(tmp_dir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, Path]:
    """Self-signed cert for localhost and 127.0.0.1: (server ctx, client ctx trusting it, cert)."""
    cert, key = tmp_dir / "relay-cert.pem", tmp_dir / "relay-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client, cert
