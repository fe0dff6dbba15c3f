"""Parsing `addr` and `Display Name <addr>` strings into checked mailboxes."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.headerregistry import Address

from email_validator import EmailNotValidError, validate_email

_ANGLE = re.compile(r"^(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A display name (maybe empty) and a checked address."""

    name: str
    email: str

    @property
    def is_ascii(self) -> bool:
        return self.email.isascii()

    def header_address(self) -> Address:
        """The address as the email package writes it into a header."""
        local, _, domain = self.email.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)

    def __str__(self) -> str:
        return str(self.header_address())


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


# Checking an address costs more than building a message around it, and the same few
# senders and recipients come again and again; a Mailbox is immutable, so share it.
@functools.lru_cache(maxsize=4096)
def parse_mailbox(value: str) -> Mailbox:
    """A mailbox from `addr` or `Name <addr>`; ValueError says what is wrong."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters such as CR or LF")
    text = value.strip()
    match = _ANGLE.match(text)
    name, addr = (_unquote(match["name"].strip()), match["addr"].strip()) if match else ("", text)
    if not addr:
        raise ValueError("is missing the address")
    if "<" in addr or ">" in addr or (not match and " " in addr):
        raise ValueError("is not an address: use `addr` or `Display Name <addr>`")
    try:
        checked = validate_email(addr, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid address: {error}") from None
    return Mailbox(name=name, email=checked.normalized)
