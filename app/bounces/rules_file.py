"""POCHTA_BOUNCE_RULES_FILE: an operator's own rules, tried before the built-in ones.

```toml
[[rules]]
class = "rate_limited"          # required: a bounce class (SPEC §8)
code = 550                      # any of these; all given must match
enhanced = "5.2"                # 5.2.1, or a prefix such as 5.2
pattern = "mailbox unavailable" # a regular expression searched in the text, any case
```
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from app.bounces.classes import BounceClass
from app.bounces.rule import Rule

_KEYS = frozenset({"class", "code", "enhanced", "pattern"})
_ENHANCED = re.compile(r"^[245x](?:\.\d{1,3}){0,2}$")


class RulesFileError(ValueError):
    """The rules file cannot be used; the message is one line naming the file and the key."""


def read_rules(path: Path) -> tuple[Rule, ...]:
    """The file's rules in its order; RulesFileError if any part of it is wrong."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RulesFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RulesFileError(f"{path}: not valid TOML ({error})") from None
    extra = set(document) - {"rules"}
    if extra:
        raise RulesFileError(f"{path}: unknown key {sorted(extra)[0]!r} (only [[rules]])")
    tables = document.get("rules", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RulesFileError(f"{path}: rules must be [[rules]] tables")
    return tuple(_rule(path, index, table) for index, table in enumerate(tables))


def _rule(path: Path, index: int, table: dict[str, Any]) -> Rule:
    where = f"{path}: rules[{index}]"
    unknown = set(table) - _KEYS
    if unknown:
        raise RulesFileError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = table.get("class")
    if name not in set(BounceClass):
        choices = ", ".join(BounceClass)
        raise RulesFileError(f"{where}.class: must be one of {choices} (got {name!r})")
    code = table.get("code")
    if code is not None and (
        not isinstance(code, int) or isinstance(code, bool) or not 200 <= code <= 599
    ):
        raise RulesFileError(f"{where}.code: must be a reply code such as 550 (got {code!r})")
    enhanced = table.get("enhanced")
    if enhanced is not None and (not isinstance(enhanced, str) or not _ENHANCED.match(enhanced)):
        raise RulesFileError(
            f"{where}.enhanced: must be an enhanced code or its prefix, such as 5.7.1 or 5.7 "
            f"(got {enhanced!r})"
        )
    pattern = table.get("pattern")
    compiled = None
    if pattern is not None:
        if not isinstance(pattern, str):
            raise RulesFileError(f"{where}.pattern: must be a string (got {pattern!r})")
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as error:
            raise RulesFileError(f"{where}.pattern: not a regular expression ({error})") from None
    return Rule(
        BounceClass(name),
        codes=frozenset({code}) if code is not None else None,
        enhanced=enhanced,
        pattern=compiled,
    )
