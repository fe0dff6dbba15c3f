"""One classification rule: the conditions a refusal must meet to be of a bounce class."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.bounces.classes import BounceClass
from app.messages.states import Stage


@dataclass(frozen=True, slots=True)
class Rule:
    """A refusal of this class: every condition given must hold (none given: any refusal)."""

    bounce_class: BounceClass
    # The reply's code is one of these.
    codes: frozenset[int] | None = None
    # The enhanced code starts with this, component by component ("5.7" takes 5.7.1,
    # not 5.71.1); an "x" first component stands for either class, 4 or 5.
    enhanced: str | None = None
    # Searched, case-insensitively, in the reply's text (or Pochta's error).
    pattern: re.Pattern[str] | None = None
    # Only at these stages (built-in rules only: an operator's rule is about the words).
    stages: frozenset[Stage] | None = None
    # Only when there is neither a code nor an enhanced code: Pochta's own finding.
    silent: bool = False

    def matches(
        self, code: int | None, enhanced: str | None, text: str, stage: Stage | None
    ) -> bool:
        if self.silent and (code is not None or enhanced is not None):
            return False
        if self.codes is not None and code not in self.codes:
            return False
        if self.enhanced is not None and not _has_prefix(enhanced, self.enhanced):
            return False
        if self.stages is not None and stage not in self.stages:
            return False
        return self.pattern is None or self.pattern.search(text) is not None


def _has_prefix(enhanced: str | None, prefix: str) -> bool:
    if enhanced is None:
        return False
    have, want = enhanced.split("."), prefix.split(".")
    if len(want) > len(have):
        return False
    return all(
        w == h or (i == 0 and w == "x") for i, (w, h) in enumerate(zip(want, have, strict=False))
    )
