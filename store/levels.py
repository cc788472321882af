"""The triage levels, ``calm < watch < empathy < urgent`` (DESIGN section 5), defined once.

They live in the store, the lowest layer, because the store checks every level it writes and
cannot import ``console``; the triage engine, the policy and the console import them from here
(``console.policy`` re-exports them). The schema's ``CHECK`` in migration 0001 spells the same
four words: a migration is history and is not rewritten, so a new level needs a new migration.
"""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("calm", "watch", "empathy", "urgent")
# "Needs a human" (DESIGN section 5): at or above this level.
NEEDS_HUMAN = "empathy"

_RANK = {name: i for i, name in enumerate(LEVELS)}


def level_rank(level: str | None) -> int:
    """The position of ``level`` in ``calm < watch < empathy < urgent``; unknown or none: calm."""
    return _RANK.get(level or "calm", 0)


def max_level(*levels: str) -> str:
    """The highest of ``levels`` (``calm`` when none)."""
    return max(levels, key=level_rank) if levels else "calm"
