"""What each key scope may do (SPEC §11): the rule, in one place."""

from __future__ import annotations

from app.keys.models import KeyScope


def permits(held: KeyScope, needed: KeyScope) -> bool:
    """Whether a key of scope `held` may use a route that needs `needed`.

    `full` may do everything; `send` only what needs `send` (submit, cancel); `read` only
    what needs `read` (every GET). A route that needs `full` is for full keys alone.
    """
    return held is KeyScope.full or held is needed
