"""Triage: which customers need a human, and why (DESIGN.md section 5).

``TriageEngine`` is pure Python and offline; importing this package is cheap (the lexicons
load when an engine is constructed).
"""

from __future__ import annotations

from console.reasons import REASONS
from console.triage.engine import State, TriageEngine, Verdict
from store.levels import LEVELS

__all__ = ["LEVELS", "REASONS", "State", "TriageEngine", "Verdict"]
