"""Why a bot turn did not use the LLM's answer, as agents read it on the transcript and tile.

One table for the bot (which records the code) and the console (which shows the words); it
lives in the lowest layer so the console can read it without importing the bot.
"""

from __future__ import annotations

LLM_FALLBACKS: dict[str, str] = {
    "timeout": "LLM timed out",
    "unavailable": "LLM unreachable",
    "error": "LLM error",
    "malformed": "LLM reply malformed",
    "incomplete": "LLM reply cut off",
    "empty": "LLM reply empty",
    "ungrounded": "LLM reply not grounded",
    "handoff_overruled": "LLM hand-off overruled",
    "unknown_overruled": "LLM did not know; the knowledge base did",
    "paused": "LLM paused after failures",
}
