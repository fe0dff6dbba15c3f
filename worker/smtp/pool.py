"""This process's connection to the relay: reused, checked after idling, reopened."""

from __future__ import annotations

import time

from app.config import Settings, SmtpSecurity
from worker.smtp.connection import RelayConnection, tls_context

# Back to back, a connection that just answered is used as it is; after this long idle,
# an RSET checks it first, as Postfix does for a cached session.
CHECK_AFTER_IDLE_SECONDS = 1.0


class RelayPool:
    """This process's connection to the relay, reopened when it dies, ages or idles out."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connections_opened = 0
        self._context = (
            tls_context(settings) if settings.smtp_security is not SmtpSecurity.none else None
        )
        self._connection: RelayConnection | None = None

    @property
    def is_open(self) -> bool:
        """Whether a session with the relay is open now."""
        return self._connection is not None and self._connection.is_open

    def acquire(self) -> RelayConnection:
        """A connection ready for MAIL FROM: the current one (RSET first if idle), or a new one."""
        current = self._connection
        if current is not None and current.is_open:
            idle = time.monotonic() - current.last_used
            worn = current.transactions >= self.settings.smtp_max_messages_per_connection
            if idle > self.settings.smtp_max_idle_seconds or worn:
                current.close()
            elif current.needs_reset or idle > CHECK_AFTER_IDLE_SECONDS:
                # RSET ends a transaction left open, and proves that a connection which
                # sat idle is still there before a message's attempt depends on it.
                if current.reset():
                    return current
            else:
                # No check on the common path (it would cost a round trip per message):
                # the first command proves the connection, or fails as a StaleConnection.
                current.proven_alive = False
                return current
        connection = RelayConnection(self.settings, self._context)
        self._connection = connection
        self.connections_opened += 1
        connection.open()
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
