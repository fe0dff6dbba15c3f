"""How a relay session breaks: at which stage, with the relay's reply or Pochta's error."""

from __future__ import annotations

from app.messages.relay_results import Reply
from app.messages.states import Stage


class RelayError(Exception):
    """The session broke at a stage: with the relay's reply, or an error when it said nothing."""

    def __init__(self, stage: Stage, *, reply: Reply | None = None, error: str | None = None):
        super().__init__(str(reply) if reply else error)
        self.stage = stage
        self.reply = reply
        self.error = error

    @property
    def is_permanent(self) -> bool:
        # Before MAIL FROM a refusal is about the relay or our settings (greeting, TLS,
        # credentials), never the message: temporary, as Postfix's smtp_skip_5xx_greeting
        # and soft bounce for AUTH. Only 5xx to the transaction itself are permanent.
        return (
            self.reply is not None
            and self.reply.is_permanent
            and self.stage in (Stage.mail, Stage.rcpt, Stage.data)
        )


class NoReplyAfterData(RelayError):
    """The final dot went out and no reply came: the relay may have taken the message."""


class StaleConnection(RelayError):
    """A reused connection failed at its first command: the relay had closed it meanwhile."""
