"""Parsing `addr` and `Display Name <addr>` strings into checked mailboxes."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.headerregistry import Address

from email_validator import EmailNotValidError, validate_email

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
_BIDI_OVERRIDES = re.compile("[\u202a-\u202e\u2066-\u2069]")
# RFC 5321 §4.5.3.1.1 and §4.5.3.1.3 (a path of 256 octets less its angle brackets).
MAX_LOCAL_PART_OCTETS = 64
MAX_ADDRESS_OCTETS = 254
# No RFC caps a display name; encoding a non-ASCII one costs the square of its length,
# and no person's or team's name needs more than this.
MAX_DISPLAY_NAME_CHARS = 256


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A display name (maybe empty) and a checked address.

    `email` is what goes into the envelope and the headers: the domain as its A-label
    unless the local part is UTF-8 anyway (then the message needs SMTPUTF8, RFC 6531
    §3.2, and the U-label is what such a relay expects). `written` keeps the domain in
    the form the client wrote it, for the Message resource.
    """

    name: str
    email: str
    written: str

    @property
    def is_ascii(self) -> bool:
        return self.email.isascii()

    def header_address(self) -> Address:
        """The address as the email package writes it into a header."""
        local, _, domain = self.email.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)

    def __str__(self) -> str:
        local, _, domain = self.written.rpartition("@")
        return str(Address(display_name=self.name, username=local, domain=domain))


def no_bidi_override(value: str) -> str:
    """ValueError if value holds a bidirectional override; value otherwise."""
    # `invoice\u202efdp.exe` reads as `invoiceexe.pdf`: a name that lies.
    if _BIDI_OVERRIDES.search(value):
        raise ValueError(
            "must not contain bidirectional override characters (U+202A-U+202E, U+2066-U+2069)"
        )
    return value


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _split(text: str) -> tuple[str, str, bool]:
    """(display name, address, whether angle brackets were used) of a stripped string."""
    # The address is the last <...> at the end; found by position, not by a regex that
    # backtracks quadratically over a long run of spaces.
    start = text.rfind("<")
    if not text.endswith(">") or start < 0 or ">" in text[start + 1 : -1]:
        return "", text, False
    return _unquote(text[:start].strip()), text[start + 1 : -1].strip(), True


# Checking an address costs more than building a message around it, and the same few
# senders and recipients come again and again; a Mailbox is immutable, so share it.
@functools.lru_cache(maxsize=4096)
def parse_mailbox(value: str) -> Mailbox:
    """A mailbox from `addr` or `Name <addr>`; ValueError says what is wrong."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters such as CR or LF")
    no_bidi_override(value)
    name, addr, bracketed = _split(value.strip())
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        raise ValueError(f"has a display name over {MAX_DISPLAY_NAME_CHARS} characters")
    if not addr:
        raise ValueError("is missing the address")
    if "<" in addr or ">" in addr or (not bracketed and " " in addr):
        raise ValueError("is not an address: use `addr` or `Display Name <addr>`")
    try:
        checked = validate_email(addr, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid address: {error}") from None
    local = checked.local_part
    if len(local.encode("utf-8")) > MAX_LOCAL_PART_OCTETS:
        raise ValueError(f"has a local part over {MAX_LOCAL_PART_OCTETS} octets (RFC 5321)")
    domain = checked.ascii_domain if local.isascii() else checked.domain
    email = f"{local}@{domain}"
    if len(email.encode("utf-8")) > MAX_ADDRESS_OCTETS:
        raise ValueError(f"is over {MAX_ADDRESS_OCTETS} octets (RFC 5321)")
    written_domain = checked.ascii_domain if addr.rpartition("@")[2].isascii() else checked.domain
    return Mailbox(name=name, email=email, written=f"{local}@{written_domain}")
