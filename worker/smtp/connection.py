"""One ESMTP connection to the relay, driven with smtplib: opened, then MAIL, RCPT, DATA."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time

from app.config import Settings, SmtpSecurity
from app.messages.relay_results import Reply
from app.messages.states import Stage
from worker.smtp.capabilities import Capabilities
from worker.smtp.errors import NoReplyAfterData, RelayError, StaleConnection
from worker.smtp.transcript import (
    RecordingClient,
    RecordingSMTP,
    RecordingSMTP_SSL,
    Transcript,
)

log = logging.getLogger("pochta.smtp")

_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def dot_stuffed(raw: bytes) -> bytes:
    """The DATA payload: leading dots doubled and the terminating dot (RFC 5321 §4.5.2)."""
    payload = _LEADING_DOT.sub(b"..", raw)
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    return payload + b".\r\n"


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifying by default; POCHTA_SMTP_CA_FILE for a private CA, or verification off."""
    context = ssl.create_default_context(cafile=settings.smtp_ca_file)
    if not settings.smtp_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RelayConnection:
    """An open, greeted (and maybe TLS-wrapped, authenticated) session with the relay."""

    def __init__(
        self,
        settings: Settings,
        context: ssl.SSLContext | None,
        transcript: Transcript | None = None,
    ) -> None:
        self.settings = settings
        self.capabilities = Capabilities(None, False, False, None)
        self.transactions = 0
        # A MAIL FROM was sent since the last RSET: the next transaction needs one first.
        self.needs_reset = False
        # The relay answered since the pool handed this connection out again: its socket and
        # what its EHLO announced can be trusted. A relay may close a pooled connection at
        # any time (reload, idle timeout, a cap per connection) without Pochta noticing.
        self.proven_alive = False
        self.last_used = time.monotonic()
        self._context = context
        self._client: RecordingClient | None = None
        self._stage = Stage.connect
        # Where the dialogue goes: the attempt using the connection now (record_into).
        self._transcript = transcript

    def record_into(self, transcript: Transcript | None) -> None:
        """Note the dialogue from now on in transcript: the attempt that uses this connection."""
        self._transcript = transcript
        if self._client is not None:
            self._client.transcript = transcript

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._client.sock is not None

    def open(self) -> None:
        """Connect, greet, secure and authenticate as the settings say; RelayError if not."""
        settings = self.settings
        try:
            self._stage = Stage.connect
            # Host and port go to the constructor: smtplib keeps them as the TLS server
            # name, and raises SMTPConnectError for a greeting other than 220.
            if settings.smtp_security is SmtpSecurity.tls:
                client: RecordingClient = RecordingSMTP_SSL(
                    settings.smtp_host,
                    settings.smtp_port,
                    local_hostname=settings.smtp_helo_name,
                    timeout=settings.smtp_timeout,
                    context=self._context,
                    transcript=self._transcript,
                )
            else:
                client = RecordingSMTP(
                    settings.smtp_host,
                    settings.smtp_port,
                    local_hostname=settings.smtp_helo_name,
                    timeout=settings.smtp_timeout,
                    transcript=self._transcript,
                )
            self._client = client
            self._greet(client)
            if settings.smtp_security is SmtpSecurity.starttls:
                self._stage = Stage.starttls
                if not client.has_extn("starttls"):
                    raise RelayError(Stage.starttls, error="the relay does not offer STARTTLS")
                self._expect(client.starttls(context=self._context), 220)
                self._greet(client)
            if settings.smtp_username is not None and settings.smtp_password is not None:
                self._stage = Stage.auth
                client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        except RelayError:
            self.close()
            raise
        except smtplib.SMTPResponseException as error:
            self.close()
            reply = Reply.parse(error.smtp_code, error.smtp_error)
            if self._stage is Stage.auth:
                _log_auth_problem(settings, str(reply))
            raise RelayError(self._stage, reply=reply) from None
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            if self._stage is Stage.auth:
                _log_auth_problem(settings, _describe(error))
            raise RelayError(self._stage, error=_describe(error)) from None
        self.capabilities = Capabilities.of(client)
        self.proven_alive = True
        self.last_used = time.monotonic()
        log.info("relay connection opened", extra={"relay": settings.relay})

    def _greet(self, client: smtplib.SMTP) -> None:
        self._stage = Stage.ehlo
        code, text = client.ehlo()
        if code == 421 or (code != 250 and not 500 <= code < 600):
            raise RelayError(Stage.ehlo, reply=Reply.parse(code, text))
        if code != 250:
            # RFC 5321 §3.2: a server that does not know EHLO gets HELO.
            self._expect(client.helo(), 250)

    def _expect(self, answer: tuple[int, bytes], code: int) -> None:
        if answer[0] != code:
            raise RelayError(self._stage, reply=Reply.parse(*answer))

    def reset(self) -> bool:
        """RSET before the next transaction; False if the connection is no longer usable."""
        client = self._client
        if client is None:
            return False
        try:
            code, _ = client.rset()
        except (OSError, smtplib.SMTPException):
            self.close()
            return False
        if code != 250:
            self.close()
            return False
        self.needs_reset = False
        self.proven_alive = True
        return True

    def command(self, stage: Stage, verb: str, argument: str, options: list[str]) -> Reply:
        """MAIL or RCPT; a dropped connection is a RelayError at that stage.

        On a connection reused without a check, a drop or a 421 is a StaleConnection: the
        relay closed it while it sat in the pool, which says nothing about the message.
        """
        client = self._require(stage)
        self._stage = stage
        broken = RelayError if self.proven_alive else StaleConnection
        try:
            if verb == "mail":
                self.needs_reset = True
            code, text = _envelope_command(client, verb, argument, options)
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise broken(stage, error=_describe(error)) from None
        reply = Reply.parse(code, text)
        if reply.code == 421 and broken is StaleConnection:
            self.close()
            raise StaleConnection(stage, reply=reply)
        self._after(reply)
        return reply

    def data(self, raw: bytes) -> Reply:
        """DATA, the content, the final dot; the reply that settles the accepted recipients."""
        client = self._require(Stage.data)
        try:
            client.putcmd("data")
            code, text = client.getreply()
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise RelayError(Stage.data, error=_describe(error)) from None
        if code != 354:
            reply = Reply.parse(code, text)
            self._after(reply)
            return reply
        try:
            client.send(dot_stuffed(raw))
            client.note_payload(len(raw))
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise RelayError(Stage.data, error=_describe(error)) from None
        try:
            code, text = client.getreply()
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise NoReplyAfterData(
                Stage.data,
                error=f"no reply after DATA: may have been delivered ({_describe(error)})",
            ) from None
        reply = Reply.parse(code, text)
        self.transactions += 1
        # The reply to the final dot ends the transaction, whatever its code (RFC 5321
        # §4.1.1.4): the next MAIL FROM needs no RSET.
        self.needs_reset = False
        self._after(reply)
        return reply

    def _after(self, reply: Reply) -> None:
        self.proven_alive = True
        self.last_used = time.monotonic()
        if reply.code == 421:
            # RFC 5321 §3.8: the relay is closing; this connection must not be reused.
            self.close()

    def _require(self, stage: Stage) -> RecordingClient:
        if self._client is None:
            raise RelayError(stage, error="connection is closed")
        return self._client

    def close(self) -> None:
        """QUIT politely if the relay is still there; drop the socket in any case."""
        client, self._client = self._client, None
        if client is None:
            return
        # The QUIT that ends a session belongs to no message's dialogue.
        client.transcript = None
        try:
            if client.sock is not None:
                client.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            client.close()


def _envelope_command(
    client: smtplib.SMTP, verb: str, mailbox: str, options: list[str]
) -> tuple[int, bytes]:
    """MAIL FROM or RCPT TO, as smtplib's mail() and rcpt() send them, but with the path
    written as `<mailbox>` (RFC 5321 §4.1.2) instead of through smtplib.quoteaddr: that
    parses the address again with email.utils.parseaddr, twice a message, for addresses
    checked at submit that it can only give back unchanged."""
    if verb == "mail" and any(option.upper() == "SMTPUTF8" for option in options):
        if not client.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
        client.command_encoding = "utf-8"
    extensions = "".join(f" {option}" for option in options) if client.does_esmtp else ""
    keyword = "FROM" if verb == "mail" else "TO"
    client.putcmd(verb, f"{keyword}:<{mailbox}>{extensions}")
    return client.getreply()


def _log_auth_problem(settings: Settings, what: str) -> None:
    # Every message waits on this until an operator fixes it, so say so loudly.
    log.error(
        "the relay refused Pochta's credentials: check POCHTA_SMTP_USERNAME and "
        "POCHTA_SMTP_PASSWORD; messages stay deferred until then (%s)",
        what,
        extra={"relay": settings.relay, "username": settings.smtp_username},
    )


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, TimeoutError | smtplib.SMTPServerDisconnected) and "timed out" in text:
        return f"timed out: {text}"
    return f"{type(error).__name__}: {text}"
