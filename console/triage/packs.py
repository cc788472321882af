"""One language's lexicon compiled for matching: phrase cues, structures, words and sentiment.

A :class:`Pack` is built once per language per engine (lazily, on the first message in that
language) and is read-only afterwards, apart from its word mapper's memo.
"""

from __future__ import annotations

from collections.abc import Iterable

from console.triage import text as T
from console.triage.lexicon import Lexicon, load
from console.triage.sentiment import SentimentScorer, load_vader
from console.triage.typos import WordMapper

# The phrase itself carries the negation (or negation does not undo it), so a preceding
# negator must not cancel the cue.
NEGATION_PROOF = frozenset(
    {"bot_complaint", "sarcasm", "praise", "positive_idiom", "problem", "safety", "abuse"}
)
NO_TYPO_TARGETS = frozenset({"abuse", "prompt_injection"})
# Tokens that end a sentence for structures (an actor in one sentence and a verb in the next
# are not one event).
_SENTENCE_END = frozenset({".", "!", "?", ";"})
_MAX_SENTENCE = 40  # tokens; longer runs without a full stop are read in windows of this size


def _choices(pattern: str) -> Iterable[str]:
    for part in pattern.split():
        yield from part.rstrip("?").split("|")


class Pack:
    """A language's lexicon, compiled."""

    def __init__(self, lexicon: Lexicon, emoji: dict[str, float] | None = None) -> None:
        self.code = lexicon.code
        self.lexicon = lexicon
        stems: set[str] = set()
        words: set[str] = set()
        cue_words: set[str] = set()

        def note(word: str, cue: bool) -> None:
            w = T.tokens_of(word)
            if w == "*":
                return
            if w.endswith("*"):
                if len(w) - 1 >= 4:
                    stems.add(w[:-1])
                return
            words.add(w)
            if cue:
                cue_words.add(w)

        for label, patterns in lexicon.cues.items():
            for p in patterns:
                for c in _choices(p):
                    # Abuse and injection words are not spelling targets: a customer whose
                    # "stucked" became "sucked" has not sworn at anyone.
                    note(c, label not in NO_TYPO_TARGETS)
        for s in lexicon.structures:
            for g in s.groups:
                for c in g.split("|"):
                    note(c, True)
        for w in lexicon.request_alone:
            note(w, True)
        plain = (
            lexicon.request_before
            | lexicon.negators
            | lexicon.boundaries
            | lexicon.contrast
            | lexicon.stopwords
            | lexicon.request_negators_ignored
            | frozenset(lexicon.boosters)
            | frozenset(lexicon.valence)
        )
        for w in plain:
            note(w, False)
        self.stems = frozenset(stems)
        # A word the file lists whole is itself, even if a stem covers it ("betalnings-
        # anmärkning" is not "betalning*"); a stem also matches the whole words it covers.
        self.exact = frozenset(words)
        self._covered = {
            stem: "|".join(sorted(w for w in words if w.startswith(stem))) for stem in stems
        }
        canon = self.canon
        # Every word the lexicon names, as it appears in text (tells sibling languages apart).
        self.own_words = frozenset(canon(w) for w in words) | frozenset(s + "*" for s in stems)
        self.mapper = WordMapper(
            (w for w in words if canon(w) == w),
            self.stems,
            lexicon.guard,
            exempt=(T.tokens_of(w) for w in lexicon.typo_exempt),
            typos=True,
        )
        # Typo targets are the cue words (not every stopword and valence word).
        self.mapper.restrict_targets(canon(w) for w in cue_words)
        self.cues = T.PhraseMatcher(
            {label: [self._widen(p) for p in patterns] for label, patterns in lexicon.cues.items()},
            canon=canon,
        )
        self.structures: list[tuple[str, tuple[frozenset[str], ...]]] = [
            (
                s.reason,
                tuple(
                    frozenset(canon(T.tokens_of(c)) for c in self._widen(g).split("|"))
                    for g in s.groups
                ),
            )
            for s in lexicon.structures
        ]
        self._structure_words = frozenset(
            w for _, groups in self.structures for g in groups for w in g
        )

        def words_of(items: Iterable[str]) -> frozenset[str]:
            return frozenset(canon(T.tokens_of(w)) for w in items)

        self.negators = words_of(lexicon.negators)
        self.boundaries = words_of(lexicon.boundaries) | {",", ".", ";", ":"}
        self.contrast = words_of(lexicon.contrast)
        self.stopwords = words_of(lexicon.stopwords)
        self.not_content = self.stopwords | T.MARKS  # what a message's content words are not
        self.request_alone = words_of(lexicon.request_alone)
        self.request_before = words_of(lexicon.request_before)
        self.request_negators_ignored = words_of(lexicon.request_negators_ignored)
        valence = {canon(T.tokens_of(w)): v for w, v in lexicon.valence.items()}
        if lexicon.vader:
            base = load_vader(lexicon.neutral)
            base.update(valence)
            valence = base
        elif emoji:
            valence = {**emoji, **valence}
        self.sentiment = SentimentScorer(
            valence,
            negators=self.negators,
            boundaries=self.boundaries,
            boosters={canon(T.tokens_of(w)): v for w, v in lexicon.boosters.items()},
            contrast=self.contrast,
        )

    def _widen(self, pattern: str) -> str:
        """``pattern`` with each stem choice also naming the whole words it covers."""
        if not self._covered or "*" not in pattern:
            return pattern
        parts = []
        for part in pattern.split(" "):
            optional = part.endswith("?") and len(part) > 1
            out = []
            for c in (part[:-1] if optional else part).split("|"):
                out.append(c)
                if c.endswith("*") and len(c) > 1:
                    covered = self._covered.get(T.tokens_of(c)[:-1])
                    if covered:
                        out.append(covered)
            parts.append("|".join(out) + ("?" if optional else ""))
        return " ".join(parts)

    def canon(self, word: str) -> str:
        """A lexicon word as the mapper will present it in text: its stem when it has one."""
        if word.endswith("*") or not self.stems or word in self.exact:
            return word
        for n in range(len(word), 3, -1):
            if word[:n] in self.stems:
                return word[:n] + "*"
        return word

    def structure_hits(self, toks: list[str]) -> list[str]:
        """Reasons whose structure is complete in one sentence of ``toks``."""
        if not self.structures or self._structure_words.isdisjoint(toks):
            return []
        # Only a structure complete in the whole message can be complete in one sentence:
        # most messages have none, and need no sentence splitting.
        present = self._structure_words.intersection(toks)
        candidates = [
            (reason, groups)
            for reason, groups in self.structures
            if all(not g.isdisjoint(present) for g in groups)
        ]
        if not candidates:
            return []
        found: list[str] = []
        start = 0
        n = len(toks)
        while start < n:
            end = start
            while end < n and toks[end] not in _SENTENCE_END and end - start < _MAX_SENTENCE:
                end += 1
            sentence = set(toks[start:end])
            for reason, groups in candidates:
                if reason not in found and all(not g.isdisjoint(sentence) for g in groups):
                    found.append(reason)
            start = end + 1
        return found


def build(code: str, emoji: dict[str, float] | None = None) -> Pack:
    """The compiled pack of one shipped language."""
    return Pack(load(code), emoji)
