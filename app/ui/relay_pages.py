"""The relays page: each relay's state, current rate and open sessions (SPEC §10)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.clock import utcnow
from app.config import get_settings
from app.relays.report import rate_text, relay_reports
from app.ui.render import render
from app.ui.viewer import ViewerDep

router = APIRouter(prefix="/relays")


@router.get("")
def relays_page(viewer: ViewerDep) -> Response:
    """What `pochta relays` prints, for every tenant alike: relays are the operator's."""
    now = utcnow()
    reports = relay_reports(get_settings(), now)
    return render(
        "relays.html",
        viewer=viewer,
        relays=[(report, rate_text(report.rate_per_second)) for report in reports],
        now=now,
    )
