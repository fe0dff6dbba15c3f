"""The API's shapes: what a client submits and the Message resource it reads back."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from app.messages.addresses import parse_mailbox
from app.messages.states import AttemptOutcome, MessageStatus, RecipientStatus, Stage

# RFC 5322 §3.6.8: printable US-ASCII except colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
_RESERVED_HEADERS = {
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "reply-to",
}


def _mailbox(value: str) -> str:
    return str(parse_mailbox(value))


def _no_line_breaks(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain CR or LF")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2026-12-01T09:00:00Z")
    return value


def _format_utc(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


MailboxStr = Annotated[str, AfterValidator(_mailbox)]
SingleLine = Annotated[str, AfterValidator(_no_line_breaks)]
AwareDatetime = Annotated[datetime, AfterValidator(_utc)]
UtcTimestamp = Annotated[datetime, PlainSerializer(_format_utc, return_type=str)]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: SingleLine = Field(min_length=1, max_length=255)
    content_type: SingleLine = Field(
        default="application/octet-stream", pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=255
    )
    content: str = Field(description="The file's bytes, base64-encoded.")
    content_id: SingleLine | None = Field(default=None, max_length=255)

    @field_validator("content")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64") from None
        return value

    def data(self) -> bytes:
        return base64.b64decode(self.content)


class SubmitMessage(BaseModel):
    """One email as a client submits it (SPEC §2)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: MailboxStr = Field(alias="from")
    to: list[MailboxStr] = Field(default_factory=list)
    cc: list[MailboxStr] = Field(default_factory=list)
    bcc: list[MailboxStr] = Field(default_factory=list)
    reply_to: list[MailboxStr] = Field(default_factory=list)
    subject: SingleLine = Field(default="", max_length=998)
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    headers: dict[str, SingleLine] = Field(default_factory=dict)
    envelope_from: MailboxStr | None = None
    send_at: AwareDatetime | None = None
    tags: list[Annotated[SingleLine, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20
    )
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)

    @field_validator("headers")
    @classmethod
    def _custom_headers_only(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _FIELD_NAME.match(name):
                raise ValueError(f"{name!r} is not an RFC 5322 header field name")
            lowered = name.lower()
            if lowered in _RESERVED_HEADERS or lowered.startswith("content-"):
                raise ValueError(f"{name!r} is set by Pochta and cannot be given")
        return value

    @model_validator(mode="after")
    def _has_recipient_and_body(self) -> SubmitMessage:
        if not (self.to or self.cc or self.bcc):
            raise ValueError("at least one of to, cc or bcc is required")
        if self.text is None and self.html is None:
            raise ValueError("at least one of text or html is required")
        return self


class RecipientOut(BaseModel):
    email: str
    status: RecipientStatus
    smtp_code: int | None
    enhanced_code: str | None
    smtp_reply: str | None
    attempts: int


class AttemptOut(BaseModel):
    number: int
    started_at: UtcTimestamp
    finished_at: UtcTimestamp
    relay: str
    outcome: AttemptOutcome
    stage: Stage
    smtp_code: int | None
    enhanced_code: str | None
    smtp_reply: str | None
    error: str | None


class MessageOut(BaseModel):
    """The Message resource (SPEC §2)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    status: MessageStatus
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    reply_to: list[str]
    subject: str
    message_id: str
    tags: list[str]
    metadata: dict[str, Any]
    created_at: UtcTimestamp
    send_at: UtcTimestamp | None
    updated_at: UtcTimestamp
    next_attempt_at: UtcTimestamp | None
    attempt_count: int
    recipients: list[RecipientOut]
    attempts: list[AttemptOut]


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None


MAX_BATCH = 500


class SubmitBatch(BaseModel):
    """Up to 500 emails; each item is checked on its own, so one bad item spoils none."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        json_schema_extra={"items": {"$ref": "#/components/schemas/SubmitMessage"}},
    )


class BatchItemResult(BaseModel):
    index: int
    status: int
    message: MessageOut | None = None
    error: dict[str, Any] | None = None


class BatchResults(BaseModel):
    results: list[BatchItemResult]
