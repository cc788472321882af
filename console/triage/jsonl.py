"""The ``tandem triage`` JSONL contract (DESIGN.md section 5), one line at a time.

Input, one conversation a line::

    {"id": "...", "messages": [{"role": "customer"|"bot"|"agent", "text": "...", "fallback"?: bool}]}
    {"id": "...", "text": "..."}                  (one customer message)

Output, same order: ``{"id": "...", "level": "...", "score": 0.0, "reasons": [...]}``.
A line that cannot be scored raises :class:`LineError` with a one-line reason; the caller
reports it with the line number and goes on.
"""

from __future__ import annotations

import json
from typing import Any

from console.triage.engine import TriageEngine, Verdict
from store.text import unicode_problem

ROLES = ("customer", "bot", "agent")
MAX_LINE = 1_000_000  # bytes; a conversation larger than this is not a chat transcript
MAX_MESSAGES = 10_000


class LineError(ValueError):
    """This input line is not a valid triage request."""


def parse_line(raw: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """Validate one input line into ``(id, messages)``; raises :class:`LineError`."""
    if len(raw) > MAX_LINE:
        raise LineError(f"line too long ({len(raw):,} bytes, limit {MAX_LINE:,})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"not UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise LineError("binary data (NUL byte)")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise LineError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise LineError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:
        # json.loads refuses integers of over 4,300 digits with a plain ValueError.
        raise LineError(f"not usable JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise LineError(f"expected a JSON object, got {type(obj).__name__}")
    ident = obj.get("id")
    if ident is None:
        raise LineError('missing "id"')
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        raise LineError('"id" must be a string or an integer')
    _unicode(ident, '"id"')
    if "messages" in obj:
        messages = obj["messages"]
        if not isinstance(messages, list):
            raise LineError('"messages" must be a list')
        if len(messages) > MAX_MESSAGES:
            raise LineError(f"too many messages ({len(messages)}, limit {MAX_MESSAGES})")
        out = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise LineError(f"messages[{i}] must be an object")
            role = m.get("role", "customer")
            if role not in ROLES:
                raise LineError(f"messages[{i}].role must be one of {', '.join(ROLES)}")
            if not isinstance(m.get("text"), str):
                raise LineError(f"messages[{i}].text must be a string")
            _unicode(m["text"], f"messages[{i}].text")
            if role == "customer" and not m["text"].strip():
                raise LineError(f"messages[{i}].text is empty")
            flag = m.get("fallback")
            if flag is not None and not isinstance(flag, bool):
                raise LineError(f"messages[{i}].fallback must be true or false")
            out.append({"role": role, "text": m["text"], "fallback": flag})
        return ident, out
    if "text" in obj:
        if not isinstance(obj["text"], str):
            raise LineError('"text" must be a string')
        _unicode(obj["text"], '"text"')
        if not obj["text"].strip():
            raise LineError('"text" is empty')
        return ident, [{"role": "customer", "text": obj["text"]}]
    raise LineError('need "messages" (a list) or "text" (a string)')


def _unicode(value: object, what: str) -> None:
    # A JSON escape can spell a lone surrogate ("\ud800"): not text, and not echoed back.
    problem = unicode_problem(value, from_bytes=False) if isinstance(value, str) else None
    if problem:
        raise LineError(f"{what} {problem}")


def triage_line(engine: TriageEngine, raw: bytes) -> str:
    """One output line (JSON, no newline) for one input line; raises :class:`LineError`."""
    ident, messages = parse_line(raw)
    verdict: Verdict = engine.score_conversation(messages)
    # ASCII-only output: an id carrying C1 control characters (an 8-bit terminal escape)
    # reaches the terminal as \u escapes, never as raw bytes.
    return json.dumps({"id": ident, **verdict.as_dict()})
