"""What a built message must satisfy to be sendable at all: lines of at most 998 octets."""

from __future__ import annotations

from app.messages.schemas import SubmitMessage

# RFC 5322 §2.1.1 (and RFC 5321 §4.5.3.1.6): a relay refuses a longer line at DATA.
MAX_LINE_OCTETS = 998
_ADDRESS_FIELDS = {"from": "from", "to": "to", "cc": "cc", "reply-to": "reply_to"}


class UnsendableField(ValueError):
    """A field the message cannot carry; `loc` names it as the submit body does."""

    def __init__(self, loc: str, reason: str) -> None:
        super().__init__(reason)
        self.loc = loc


class HeaderError(UnsendableField):
    """A custom header the email package cannot write."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"headers.{name}", reason)
        self.name = name


def check_line_lengths(raw: bytes, submit: SubmitMessage) -> None:
    """UnsendableField naming the input behind the first line over 998 octets, if any.

    Bodies are encoded (quoted-printable, base64) into short lines, so such a line is a
    header the email package could not fold: a word or a name with no room to break.
    """
    lines = raw.split(b"\n")
    # Each line still ends in its CR; a regex scan here would cost seconds on 10 MB.
    number = next((n for n, line in enumerate(lines) if len(line) > MAX_LINE_OCTETS + 1), None)
    if number is None:
        return
    # Back to the first line of the (folded) header field the long line belongs to.
    while number > 0 and lines[number][:1] in (b" ", b"\t"):
        number -= 1
    name = lines[number].partition(b":")[0].decode("ascii", "replace")
    reason = f"cannot be folded into lines of at most {MAX_LINE_OCTETS} octets (RFC 5322 §2.1.1)"
    raise UnsendableField(_loc(name, submit), reason)


def _loc(name: str, submit: SubmitMessage) -> str:
    lowered = name.lower()
    if lowered in _ADDRESS_FIELDS:
        field = _ADDRESS_FIELDS[lowered]
        if field == "from":
            return field
        values: list[str] = getattr(submit, field)
        longest = max(range(len(values)), key=lambda i: len(values[i]), default=0)
        return f"{field}[{longest}]"
    if lowered == "subject":
        return "subject"
    if lowered.startswith("content-"):
        return "attachments"
    custom = {key.lower(): key for key in submit.headers}
    return f"headers.{custom[lowered]}" if lowered in custom else "headers"
