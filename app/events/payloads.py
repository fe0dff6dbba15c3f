"""The `data` of each kind of event (SPEC §7), JSON-ready, from the API's own schemas."""

from __future__ import annotations

from typing import Any

from app.messages.schemas import AttemptOut, MessageOut, RecipientOut


def message_data(message: MessageOut, attempt: AttemptOut | None) -> dict[str, Any]:
    """For message.*: the message as GET shows it, without its attempts, and the attempt."""
    return {
        "message": message.model_dump(mode="json", by_alias=True, exclude={"attempts"}),
        "attempt": attempt.model_dump(mode="json") if attempt is not None else None,
    }


def recipient_data(
    message: MessageOut, recipient: RecipientOut, report: dict[str, Any] | None
) -> dict[str, Any]:
    """For recipient.*: the message, the recipient it is about and the report, if any."""
    return {
        "message": message.model_dump(mode="json", by_alias=True, exclude={"attempts"}),
        "recipient": recipient.model_dump(mode="json"),
        "report": report,
    }


def suppression_data(suppression: dict[str, Any]) -> dict[str, Any]:
    """For suppression.created: the Suppression resource as GET shows it."""
    return {"suppression": suppression}
