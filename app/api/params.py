"""What routes read from the request besides the caller and the body: settings, the
message id in the path, the body's media type."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Path, Request

from app.config import Settings, get_settings
from app.errors import NotFound, UnsupportedMediaType


async def json_body(request: Request) -> None:
    """415 for a body that does not say it is JSON (checked before the body is parsed)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")


async def settings() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings)]

# Printable ASCII: what every id Pochta hands out is; anything else cannot name a message.
_MESSAGE_ID = re.compile(r"[!-~]{1,64}")


async def message_id_param(
    message_id: Annotated[
        str,
        Path(
            description="The message's id, as POST /v1/messages returned it.",
            examples=["msg_01jdq3z8x0d4v6m2k7r9t5w1ya"],
        ),
    ],
) -> str:
    """The id in the path; 404 without a query for what cannot be an id."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise NotFound("no message with that id")
    return message_id


MessageIdDep = Annotated[str, Depends(message_id_param)]
JsonBody = Depends(json_body)
