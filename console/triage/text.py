"""Text normalisation, tokenisation and the phrase matcher every triage signal builds on.

Customer text is data: it may contain control characters, terminal escapes, invalid
surrogates or a megabyte of noise. Everything here is total (never raises on a ``str``) and
linear in the length of the text, because the hub runs it on every message before the bot
replies.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

# Longer texts are scored on their head and tail: a 1 MB paste says no more about the
# customer's mood than its first and last few thousand characters, and the hub must not stall.
MAX_CHARS = 8_000

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]|[,.;:]")
_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")
_LETTERS = re.compile(r"[A-Za-z]")
_REPEAT_PUNCT = re.compile(r"[!?]{2,}|\?!|!\?")
# Slang spellings that would otherwise hide a negation or a pronoun from the lexicons.
_SPELLING = {
    "dont": "don't", "doesnt": "doesn't", "didnt": "didn't", "cant": "can't",
    "wont": "won't", "isnt": "isn't", "wasnt": "wasn't", "arent": "aren't",
    "havent": "haven't", "hasnt": "hasn't", "couldnt": "couldn't", "shouldnt": "shouldn't",
    "wouldnt": "wouldn't", "aint": "ain't", "im": "i'm", "ive": "i've", "youre": "you're",
    "u": "you", "ur": "your", "r": "are", "pls": "please", "plz": "please", "thx": "thanks",
    "wanna": "want", "gonna": "going", "gotta": "have", "wtf": "wtf", "idk": "idk",
}


def clip(text: str) -> str:
    """Head and tail of an over-long text, so cost stays bounded whatever arrives."""
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return text[:half] + " \n " + text[-half:]


def tokens(text: str) -> list[str]:
    """Lower-case word tokens plus ``! ? , . ; :`` marks, with common slang spellings normalised.

    Punctuation is kept as tokens so clause boundaries can stop negation windows.
    """
    raw = _TOKEN.findall(text.lower().translate(_APOSTROPHES))
    get = _SPELLING.get
    return [get(t, t) for t in raw]


def caps_words(text: str) -> int:
    """Number of all-capital words of three or more letters (shouting, not acronyms alone)."""
    return len(_CAPS_WORD.findall(text))


def letter_count(text: str) -> int:
    """Number of ASCII letters, to tell a shouted sentence from one acronym."""
    return len(_LETTERS.findall(text))


def punct_bursts(text: str) -> int:
    """Runs like ``!!`` or ``?!``: emphasis that usually means exasperation in support chats."""
    return len(_REPEAT_PUNCT.findall(text))


def expand(pattern: str) -> list[tuple[str, ...]]:
    """Expand a phrase pattern into the token tuples it stands for.

    Syntax (tokens separated by spaces): ``a|b`` alternatives, a trailing ``?`` marks an
    optional token, ``*`` matches any one token. ``speak|talk to a|an? real|live? person``
    gives 2 x 3 x 3 phrases. Written for hand-kept lexicons, so expansion is eager.
    """
    slots: list[list[str | None]] = []
    for part in pattern.split():
        optional = part.endswith("?") and len(part) > 1
        choices: list[str | None] = [c for c in part.rstrip("?").split("|") if c]
        if optional:
            choices.append(None)
        slots.append(choices)
    out: list[tuple[str, ...]] = []
    for combo in itertools.product(*slots):
        phrase = tuple(tokens_of(c) for c in combo if c is not None)
        if phrase:
            out.append(phrase)
    return out


def tokens_of(word: str) -> str:
    """Normalise one lexicon word the way :func:`tokens` normalises text."""
    if word == "*":
        return word
    found = tokens(word)
    return found[0] if found else word


class PhraseMatcher:
    """Find hand-written phrases (token tuples) in a token list in one pass.

    Phrases are indexed by their first token; a C-speed set intersection skips texts that
    contain no first token at all, which is the common case for routine messages.
    """

    def __init__(self, lexicon: dict[str, Iterable[str]]) -> None:
        self._index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for label, patterns in lexicon.items():
            for pattern in patterns:
                for phrase in expand(pattern):
                    self._index.setdefault(phrase[0], []).append((phrase[1:], label))
        for entries in self._index.values():
            # Longest first, so "not a bot" is reported before a shorter overlapping cue.
            entries.sort(key=lambda e: -len(e[0]))
        self.first = frozenset(self._index)

    def find(self, toks: list[str]) -> list[tuple[int, int, str]]:
        """``(start, end, label)`` for every phrase occurrence, in text order."""
        if self.first.isdisjoint(toks):
            return []
        hits: list[tuple[int, int, str]] = []
        n = len(toks)
        index = self._index
        for i, tok in enumerate(toks):
            entries = index.get(tok)
            if entries is None:
                continue
            for rest, label in entries:
                end = i + 1 + len(rest)
                if end > n:
                    continue
                ok = True
                for j, want in enumerate(rest):
                    if want != "*" and toks[i + 1 + j] != want:
                        ok = False
                        break
                if ok:
                    hits.append((i, end, label))
        return hits
