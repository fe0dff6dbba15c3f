"""The API's shapes: what a client submits and the Message resource it reads back."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from app.bounces.classes import BounceClass
from app.messages.addresses import parse_mailbox
from app.messages.fields import (
    MAX_HEADER_VALUE_CHARS,
    MAX_HEADER_VALUES_CHARS,
    MEDIA_TYPE,
    AwareDatetime,
    FileName,
    MailboxStr,
    SingleLine,
    Text,
    UtcTimestamp,
    at_most,
    check_metadata,
    custom_header_name,
)
from app.messages.states import AttemptOutcome, MessageStatus, RecipientStatus, Stage

__all__ = ["AwareDatetime", "MailboxStr", "SingleLine", "Text", "UtcTimestamp"]

# MIME allows line breaks in base64 (RFC 2045 §6.8), and `base64` prints lines of 76.
_WHITESPACE = str.maketrans("", "", " \t\r\n")
_Recipients = Annotated[
    list[MailboxStr], at_most(lambda s: s.max_recipients, "POCHTA_MAX_RECIPIENTS")
]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: FileName = Field(min_length=1, max_length=255)
    content_type: SingleLine = Field(
        default="application/octet-stream", pattern=MEDIA_TYPE, max_length=255
    )
    content: str = Field(description="The file's bytes, base64-encoded.")
    content_id: SingleLine | None = Field(default=None, max_length=255)

    @field_validator("content_type")
    @classmethod
    def _not_composite(cls, value: str) -> str:
        # An attachment travels base64-encoded, which RFC 2045 §6.4 forbids for the
        # composite types; a message or multipart file goes as application/octet-stream.
        if value.partition("/")[0].lower() in ("message", "multipart"):
            raise ValueError(
                "must not be message/* or multipart/*: an attachment is base64-encoded, "
                "which those types cannot be (RFC 2045 §6.4); use application/octet-stream"
            )
        return value

    @field_validator("content")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        compact = value.translate(_WHITESPACE)
        try:
            base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64") from None
        return compact

    def data(self) -> bytes:
        return base64.b64decode(self.content)


class SubmitMessage(BaseModel):
    """One email as a client submits it (SPEC §2)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: MailboxStr = Field(alias="from")
    to: _Recipients = Field(default_factory=list)
    cc: _Recipients = Field(default_factory=list)
    bcc: _Recipients = Field(default_factory=list)
    reply_to: Annotated[
        list[MailboxStr], at_most(lambda s: s.max_reply_to, "POCHTA_MAX_REPLY_TO")
    ] = Field(default_factory=list, description="At most POCHTA_MAX_REPLY_TO (10).")
    subject: SingleLine = Field(default="", max_length=998)
    text: Text | None = None
    html: Text | None = None
    attachments: Annotated[
        list[Attachment], at_most(lambda s: s.max_attachments, "POCHTA_MAX_ATTACHMENTS")
    ] = Field(default_factory=list, description="At most POCHTA_MAX_ATTACHMENTS (100).")
    headers: Annotated[
        dict[str, Annotated[SingleLine, Field(max_length=MAX_HEADER_VALUE_CHARS)]],
        at_most(lambda s: s.max_headers, "POCHTA_MAX_HEADERS"),
    ] = Field(
        default_factory=dict,
        description="Custom headers, at most POCHTA_MAX_HEADERS (100), each value at most "
        "998 characters and 16,384 in all; see the README for the names Pochta or only "
        "MTAs write, which are refused.",
    )
    envelope_from: MailboxStr | None = None
    send_at: AwareDatetime | None = None
    tags: list[Annotated[SingleLine, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20
    )
    metadata: Annotated[dict[Text, Text], BeforeValidator(check_metadata)] = Field(
        default_factory=dict,
        description="At most POCHTA_MAX_METADATA_KEYS (50) keys of at most 40 characters, "
        "string values of at most 500 (POCHTA_MAX_METADATA_KEY_CHARS, _VALUE_CHARS).",
    )

    @field_validator("headers")
    @classmethod
    def _custom_headers_only(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            custom_header_name(name)
        total = sum(len(v) for v in value.values())
        if total > MAX_HEADER_VALUES_CHARS:
            raise ValueError(
                f"values have {total} characters in all; at most {MAX_HEADER_VALUES_CHARS}"
            )
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
    error: str | None = Field(
        description="Pochta's own note where the relay's reply does not tell the whole "
        "story (`gave up after 5 attempts`, `retry lifetime of 5 days exceeded`, "
        "`suppressed: hard_bounce`), else null."
    )
    bounce_class: BounceClass | None = Field(
        default=None,
        description="What kind of refusal the last reply was (SPEC §8); null if none.",
    )


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
    bounce_class: BounceClass | None = None


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
    """One page of GET /v1/messages; next_cursor is null on the last page."""

    data: list[MessageOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor`, with the same filters, for the next page; null at the end."
    )


class ListQuery(BaseModel):
    """The query of GET /v1/messages: filters (all optional), page size and cursor."""

    # A misspelt filter is a 422, not a listing of everything.
    model_config = ConfigDict(extra="forbid")

    status: MessageStatus | None = None
    tag: Annotated[SingleLine, Field(min_length=1, max_length=100)] | None = Field(
        default=None, examples=["welcome"]
    )
    recipient: str | None = Field(
        default=None,
        max_length=320,
        description="Messages with this recipient (to, cc or bcc); `addr` or `Name <addr>`.",
        examples=["billy@example.org"],
    )
    created_after: AwareDatetime | None = Field(
        default=None,
        description="Created at or after this instant (RFC 3339, with a zone).",
        examples=["2026-11-27T00:00:00Z"],
    )
    created_before: AwareDatetime | None = Field(
        default=None,
        description="Created before this instant (RFC 3339, with a zone).",
        examples=["2026-11-28T00:00:00Z"],
    )
    limit: int = Field(default=20, ge=1, le=100, description="Page size, at most 100.")
    cursor: str | None = Field(
        default=None, max_length=200, description="The `next_cursor` of the previous page."
    )

    @field_validator("recipient")
    @classmethod
    def _address_only(cls, value: str | None) -> str | None:
        # Matched as stored: the address part, normalised as at submit.
        return None if value is None else parse_mailbox(value).email


MAX_BATCH = 500


class SubmitBatch(BaseModel):
    """Up to 500 emails; each item is checked on its own, so one bad item spoils none."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        # Any object is taken here; each is then checked as a SubmitMessage on its own and a
        # bad one gets its own 4xx result, so the schema says both.
        json_schema_extra={
            "items": {
                "anyOf": [{"$ref": "#/components/schemas/SubmitMessage"}, {"type": "object"}],
                "description": "A SubmitMessage; an invalid one gets its own 422 result.",
            }
        },
    )


class BatchItemResult(BaseModel):
    index: int
    status: int
    message: MessageOut | None = None
    error: dict[str, Any] | None = None


class BatchResults(BaseModel):
    results: list[BatchItemResult]
