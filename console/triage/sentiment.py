"""A fast, precompiled VADER-style sentiment scorer over our token lists.

VADER's own ``SentimentIntensityAnalyzer`` runs at a few thousand sentences per second, far
from the 20,000 messages/s the hub needs, so this applies the same ideas (lexicon valence,
negation flips, degree boosters, "but" shifting the weight to the second clause, exclamation
emphasis, the ``x / sqrt(x^2 + alpha)`` normalisation) in one pass over the tokens the rest of
triage already computed. VADER's lexicon file is read from the installed package (it ships
with it) and adjusted by :mod:`console.triage.lexicons.sentiment`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from itertools import compress

NEGATION_SCALAR = -0.74  # VADER's: "not good" is mildly bad, not as bad as "bad"
ALPHA = 15.0  # VADER's normalisation constant


@dataclass(slots=True)
class Sentiment:
    """Sentiment of one text: compound in [-1, 1] and the summed negative/positive valence."""

    compound: float
    negative: float  # sum of negative valences, as a positive number
    positive: float
    negated_positive: int  # "not happy", "not helpful": a polite way of saying something is wrong


def load_vader(neutral: Iterable[str] = ()) -> dict[str, float]:
    """VADER's word valences (from the installed package), less the ``neutral`` words."""
    lexicon: dict[str, float] = {}
    try:
        text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text("utf-8")
    except (OSError, ModuleNotFoundError):
        # The engine still works (with our own entries only) if the package is missing.
        text = ""
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        word = parts[0].strip().lower()
        # Emoticons are matched neither by our tokenizer nor by anything customers type often.
        # Numbers are amounts, dates and ids in support chats, never slang ("86" is rated as
        # "get rid of" on social media, which made "is my payment of 86.15 pending?" sound upset).
        if not word or not (word[0].isalnum()) or word.isdigit():
            continue
        try:
            lexicon[word] = float(parts[1])
        except ValueError:
            continue
    for word in neutral:
        lexicon.pop(word, None)
    return lexicon


class SentimentScorer:
    """Scores token lists; build once, share freely (read-only after construction)."""

    def __init__(
        self,
        lexicon: dict[str, float],
        *,
        negators: frozenset[str],
        boundaries: frozenset[str],
        boosters: dict[str, float],
        contrast: frozenset[str],
    ) -> None:
        self.lexicon = lexicon
        self._keys = frozenset(self.lexicon)
        self.negators = negators
        self.boundaries = boundaries
        self.boosters = boosters
        # "but" shifts the weight to the second clause; the language's contrast words that
        # are also clause boundaries do that.
        self.but = contrast & boundaries

    def score(self, toks: list[str]) -> Sentiment:
        """Score one message's tokens in one pass."""
        lexicon = self.lexicon
        if self._keys.isdisjoint(toks):
            return Sentiment(0.0, 0.0, 0.0, 0)
        total = 0.0
        neg = pos = 0.0
        negated_pos = 0
        but_at = -1
        but = self.but
        if not but.isdisjoint(toks):
            for i, tok in enumerate(toks):
                if tok in but:
                    but_at = i
        keys = self._keys
        negators = self.negators
        boundaries = self.boundaries
        boosters = self.boosters
        for i in compress(range(len(toks)), map(keys.__contains__, toks)):
            v = lexicon[toks[i]]
            # Look back over the clause for boosters and negators (VADER looks 3 words back).
            negated = False
            j = i - 1
            stop = max(-1, i - 4)
            while j > stop:
                prev = toks[j]
                if prev in boundaries:
                    break
                if prev in negators:
                    negated = True
                elif j == i - 1:
                    b = boosters.get(prev)
                    if b is not None:
                        v += b if v > 0 else -b
                j -= 1
            if negated:
                if v > 0:
                    negated_pos += 1
                v *= NEGATION_SCALAR
            if but_at >= 0:
                v *= 0.5 if i < but_at else 1.5
            total += v
            if v < 0:
                neg -= v
            else:
                pos += v
        bangs = toks.count("!")
        if bangs and total:
            emphasis = 0.292 * min(bangs, 4)
            total += emphasis if total > 0 else -emphasis
        compound = total / math.sqrt(total * total + ALPHA)
        return Sentiment(compound, neg, pos, negated_pos)
