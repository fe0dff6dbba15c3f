"""What the relay's EHLO announced that changes how Pochta sends."""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What EHLO announced that changes how Pochta sends."""

    size: int | None
    eightbitmime: bool
    smtputf8: bool
    rcpt_limit: int | None

    @classmethod
    def of(cls, client: smtplib.SMTP) -> Capabilities:
        size = client.esmtp_features.get("size", "").strip()
        return cls(
            size=int(size) if size.isdigit() and int(size) > 0 else None,
            eightbitmime=client.has_extn("8bitmime"),
            smtputf8=client.has_extn("smtputf8"),
            rcpt_limit=_rcpt_limit(client),
        )

    def refusal(self, size: int, needs_smtputf8: bool) -> tuple[str, str] | None:
        """(enhanced code, why) when a message of this size and need cannot go, else None."""
        if self.size is not None and size > self.size:
            return "5.3.4", f"message is {size} bytes; the relay accepts at most {self.size}"
        if needs_smtputf8 and not self.smtputf8:
            return (
                "5.6.7",
                "an address is not ASCII and the relay does not offer SMTPUTF8 (RFC 6531)",
            )
        return None


def _rcpt_limit(client: smtplib.SMTP) -> int | None:
    # RFC 9422 LIMITS RCPTMAX=n, and the older X-RCPTLIMIT n some relays announce.
    limits = client.esmtp_features.get("limits", "")
    match = re.search(r"RCPTMAX=(\d+)", limits, re.IGNORECASE)
    if match is None:
        match = re.match(r"\s*(\d+)", client.esmtp_features.get("x-rcptlimit", ""))
    value = int(match.group(1)) if match else 0
    return value if value > 0 else None
