"""Accepting many emails in one request: one transaction for every item that is valid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import PochtaError, validation_problem
from app.keys.service import Caller
from app.messages.new_message import NewMessage
from app.messages.repository import api as repository
from app.messages.schemas import SubmitMessage
from app.messages.service import prepare_message
from app.messages.suppressed import apply_suppressions


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One item's fate: the stored message, or the problem that refused it."""

    index: int
    message: NewMessage | None = None
    error: PochtaError | None = None


def submit_batch(
    session: Session,
    *,
    caller: Caller,
    items: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
) -> list[ItemOutcome]:
    """Validate and build each item alone; store the valid ones in one flush."""
    outcomes: list[ItemOutcome] = []
    for index, item in enumerate(items):
        try:
            submit = SubmitMessage.model_validate(item)
            message = prepare_message(caller=caller, submit=submit, settings=settings, now=now)
        except ValidationError as error:
            outcomes.append(ItemOutcome(index, error=validation_problem(error.errors())))
        except PochtaError as error:
            outcomes.append(ItemOutcome(index, error=error))
        else:
            outcomes.append(ItemOutcome(index, message=message))
    accepted = [o.message for o in outcomes if o.message is not None]
    apply_suppressions(session, tenant=caller.tenant, messages=accepted, now=now)
    repository.add_messages(session, accepted)
    return outcomes
