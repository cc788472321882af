"""The reasons a triage verdict gives, most important first (DESIGN section 5: the triage JSONL).

Defined below the triage engine so that the policy, which names reasons (``urgent_reasons``,
``flag_only_reasons``, ...), can check a policy file's words against them: a misspelt reason in
a policy file would otherwise never match and quietly change nothing.
"""

from __future__ import annotations

REASONS: tuple[str, ...] = (
    "human_request",
    "negative_sentiment",
    "sentiment_drop",
    "frustration",
    "repeat_question",
    "bot_fallback",
    "shouting",
    "abuse",
    "complaint_threat",
    "churn_threat",
    "vulnerability",
    "bereavement",
    "financial_hardship",
    "health",
    "safety",
    "fraud",
    "prompt_injection",
    "long_wait",
)
