"""Liveness and readiness: no auth, problem+json when a dependency is down."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import text

from app.api.openapi import example, problems
from app.api.problems import problem_response
from app.db import get_engine
from app.errors import Unavailable
from app.outbox.broker import get_celery

router = APIRouter(tags=["health"])


# HEAD is what load balancers probe with: the GET's status and headers, no body.
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", responses=example(200, {"status": "ok"}))
def healthz() -> dict[str, str]:
    """The process answers; checks nothing else."""
    return {"status": "ok"}


def _database_ok() -> bool:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _broker_ok() -> bool:
    try:
        with get_celery().connection_for_write() as connection:
            # One immediate retry: a probe must answer well within its own timeout.
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception:
        return False
    return True


@router.head("/readyz", include_in_schema=False, response_model=None)
@router.get(
    "/readyz",
    response_model=None,
    responses={**example(200, {"status": "ready"}), **problems(503)},
)
def readyz() -> dict[str, Any] | Response:
    """The database and the broker both answer."""
    down = [name for name, ok in (("database", _database_ok()), ("broker", _broker_ok())) if not ok]
    if down:
        return problem_response(Unavailable(f"unreachable: {', '.join(down)}"))
    return {"status": "ready"}
