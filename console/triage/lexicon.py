"""One language's triage lexicon, read from ``lexicons/<code>.toml``.

The files are data written for people: a native speaker reviews and extends one without
reading the engine (``lexicons/README.md`` is the guide). This module turns a file into a
:class:`Lexicon` and says clearly what is wrong with a file that does not load (file, section,
key), because a reviewer's typo must not become a silent gap in who gets flagged.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

# The order is the order reports list them in.
LANGUAGES: tuple[str, ...] = (
    "en",
    "sv",
    "no",
    "da",
    "fi",
    "de",
    "nl",
    "fr",
    "es",
    "it",
    "pl",
    "pt",
)
# The reasons every language file must cover (DESIGN.md section 5's hard reasons).
HARD_REASONS: tuple[str, ...] = (
    "human_request",
    "fraud",
    "safety",
    "bereavement",
    "financial_hardship",
    "vulnerability",
    "health",
    "abuse",
    "complaint_threat",
    "churn_threat",
)
# Reasons a file may add (prompt injection in English; others read it through the English file).
OPTIONAL_REASONS: tuple[str, ...] = ("prompt_injection",)
# Evidence the soft score weighs (see lexicons/README.md for what each one means).
EVIDENCE: tuple[str, ...] = (
    "frustration",
    "praise",
    "sarcasm",
    "bot_complaint",
    "problem",
    "persist",
    "positive_idiom",
    "politeness",
    "routine",
)
# Valence of the grouped sentiment lists, on VADER's scale (-4 .. +4).
STRENGTHS: dict[str, float] = {
    "very_negative": -3.0,
    "negative": -2.0,
    "slightly_negative": -1.0,
    "slightly_positive": 1.0,
    "positive": 2.0,
    "very_positive": 3.0,
}
_CLASS_REF = re.compile(r"\{([a-z_]+)\}")
_SECTIONS = {"language", "classes", "reasons", "evidence", "structures", "request", "sentiment"}


class LexiconError(ValueError):
    """A lexicon file is missing or malformed; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Structure:
    """A reason that needs several kinds of word in one sentence (an actor, a verb, an object).

    ``groups`` are alternatives in pattern-word syntax (``a|b|stem*``); each group must appear
    in the same sentence for the reason to count.
    """

    reason: str
    groups: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Everything one language contributes to triage, as plain data."""

    code: str
    name: str
    vader: bool  # English: VADER's lexicon is the base of the sentiment valences
    cues: dict[str, list[str]]  # reason or evidence -> phrase patterns (classes expanded)
    structures: tuple[Structure, ...]
    request_alone: frozenset[str]
    request_before: frozenset[str]
    request_negators_ignored: frozenset[str]
    negators: frozenset[str]
    boundaries: frozenset[str]
    contrast: frozenset[str]
    stopwords: frozenset[str]
    neutral: frozenset[str]
    boosters: dict[str, float]
    valence: dict[str, float]
    guard: str = ""  # the wordfreq language whose common words are never "corrected"
    typo_exempt: frozenset[str] = field(default_factory=frozenset)


def _words(where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
        raise LexiconError(f"{where}: expected a list of non-empty strings")
    return [w.strip() for w in value]


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LexiconError(f"{where}: expected a table")
    return value


def _expand(where: str, pattern: str, classes: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in classes:
            raise LexiconError(f"{where}: unknown class {{{name}}} in {pattern!r}")
        return classes[name]

    return _CLASS_REF.sub(sub, pattern)


def parse(code: str, text: str, source: str = "") -> Lexicon:
    """Parse one lexicon file's text; raises :class:`LexiconError` naming what is wrong."""
    src = source or f"{code}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LexiconError(f"{src}: not valid TOML ({exc})") from None
    unknown = set(data) - _SECTIONS
    if unknown:
        raise LexiconError(f"{src}: unknown section(s) {', '.join(sorted(unknown))}")
    lang = _table(f"{src} [language]", data.get("language", {}))
    if lang.get("code") != code:
        raise LexiconError(f"{src} [language]: code must be {code!r}, got {lang.get('code')!r}")
    classes = {
        name: "|".join(_words(f"{src} [classes] {name}", words))
        for name, words in _table(f"{src} [classes]", data.get("classes", {})).items()
    }
    cues: dict[str, list[str]] = {}
    reasons = _table(f"{src} [reasons]", data.get("reasons", {}))
    for key, value in reasons.items():
        if key not in HARD_REASONS and key not in OPTIONAL_REASONS:
            raise LexiconError(f"{src} [reasons]: unknown reason {key!r}")
        where = f"{src} [reasons] {key}"
        cues[key] = [_expand(where, p, classes) for p in _words(where, value)]
    missing = [r for r in HARD_REASONS if not cues.get(r)]
    if missing:
        raise LexiconError(f"{src} [reasons]: no phrases for {', '.join(missing)}")
    for key, value in _table(f"{src} [evidence]", data.get("evidence", {})).items():
        if key not in EVIDENCE:
            raise LexiconError(f"{src} [evidence]: unknown kind {key!r}")
        where = f"{src} [evidence] {key}"
        cues[key] = [_expand(where, p, classes) for p in _words(where, value)]
    structures = []
    raw_structures = data.get("structures", [])
    if not isinstance(raw_structures, list):
        raise LexiconError(f"{src}: [[structures]] must be an array of tables")
    for i, item in enumerate(raw_structures):
        where = f"{src} [[structures]] #{i + 1}"
        item = _table(where, item)
        reason = item.get("reason")
        if reason not in HARD_REASONS:
            raise LexiconError(f"{where}: reason must be one of the hard reasons, got {reason!r}")
        groups = _words(f"{where} groups", item.get("groups"))
        if len(groups) < 2:
            raise LexiconError(f"{where}: a structure needs at least two groups")
        note = item.get("note", "")
        structures.append(
            Structure(
                reason,
                tuple(_expand(where, g, classes) for g in groups),
                note if isinstance(note, str) else "",
            )
        )
    request = _table(f"{src} [request]", data.get("request", {}))
    sentiment = _table(f"{src} [sentiment]", data.get("sentiment", {}))

    def words(table: dict[str, Any], key: str, section: str) -> frozenset[str]:
        return frozenset(_words(f"{src} [{section}] {key}", table.get(key, [])))

    negators = words(sentiment, "negators", "sentiment")
    if not negators:
        raise LexiconError(f"{src} [sentiment]: negators are required")
    valence: dict[str, float] = {}
    for key, strength in STRENGTHS.items():
        for w in words(sentiment, key, "sentiment"):
            valence[w] = strength
    for w, v in _table(f"{src} [sentiment.valence]", sentiment.get("valence", {})).items():
        if not isinstance(v, (int, float)) or not -4.0 <= v <= 4.0:
            raise LexiconError(f"{src} [sentiment.valence] {w}: a number from -4 to 4")
        valence[w] = float(v)
    if not lang.get("vader") and not any(v <= -2.0 for v in valence.values()):
        raise LexiconError(f"{src} [sentiment]: strong negative words are required")
    boosters: dict[str, float] = {}
    for w, v in _table(f"{src} [sentiment.boosters]", sentiment.get("boosters", {})).items():
        if not isinstance(v, (int, float)):
            raise LexiconError(f"{src} [sentiment.boosters] {w}: expected a number")
        boosters[w] = float(v)
    name = lang.get("name")
    return Lexicon(
        code=code,
        name=name if isinstance(name, str) else code,
        vader=bool(lang.get("vader", False)),
        cues=cues,
        structures=tuple(structures),
        request_alone=words(request, "alone", "request"),
        request_before=words(request, "before", "request"),
        request_negators_ignored=words(request, "negators_ignored", "request"),
        negators=negators,
        boundaries=words(sentiment, "boundaries", "sentiment"),
        contrast=words(sentiment, "contrast", "sentiment"),
        stopwords=words(sentiment, "stopwords", "sentiment"),
        neutral=words(sentiment, "neutral", "sentiment"),
        boosters=boosters,
        valence=valence,
        guard=str(lang.get("wordfreq", code)),
        typo_exempt=words(lang, "typo_exempt", "language"),
    )


@cache
def load(code: str) -> Lexicon:
    """The shipped lexicon of ``code`` (one of :data:`LANGUAGES`), parsed once per process."""
    if code not in LANGUAGES:
        raise LexiconError(f"no lexicon for language {code!r}")
    path = resources.files("console.triage.lexicons").joinpath(f"{code}.toml")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LexiconError(f"{code}.toml: cannot be read ({exc})") from None
    return parse(code, text, f"{code}.toml")
