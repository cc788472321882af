"""Map a message's words onto one language's lexicon: stems and small spelling mistakes.

Customers write "humman", "opertor", "sombody", "frustated", "pleeease", and the phrase cues
are exact words. :class:`WordMapper` rewrites a token before the cues are matched when

* it starts with a stem the lexicon lists (``konto*`` takes konta, kontem, koncie), or
* it is one edit (insertion, deletion, substitution, adjacent transposition) away from a cue
  word of five letters or more, after squeezing letters repeated three times or more, and it
  is not itself a common word of the language.

The last condition keeps different words apart: "human" never becomes "humid" (two edits),
and "cancel" never becomes "cancer" (one edit, but "cancel" is a common English word). The
common words are wordfreq's lists (words at Zipf frequency >= 2, i.e. at least once in a
hundred million words), read from the installed package's data files; without them no spelling is
corrected at all, because a correction without that check would match different words.

Each distinct token is resolved once and remembered (a bounded memo per language), so the
cost on live traffic is one dictionary lookup per unusual word.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import re
from bisect import bisect_right
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from rapidfuzz.distance import OSA

from console.triage.text import fold

log = logging.getLogger(__name__)

MIN_TARGET = 5  # cue words shorter than this are matched exactly ("sue", "scam", "hurt")
MIN_TOKEN = MIN_TARGET - 1  # one letter missing from a five-letter word
MIN_STEM = 4
GUARD_ZIPF = 2.0
MEMO_LIMIT = 200_000  # distinct unusual words remembered per language before starting over
_RUNS = re.compile(r"(.)\1{2,}")
_BLOCK = 64  # common words per block of text searched


class CommonWords:
    """A language's common words, sorted, in blocks of text (about a byte a letter).

    Consulted only for a word that a spelling correction would change, so a binary search over
    the blocks' first words and one substring search in a block of ~600 characters (~1 us) is
    cheap enough, and twelve languages fit in 16 MB instead of a hundred (a set of strings).
    Sorting the words themselves is mostly merging runs, as wordfreq lists each frequency band
    alphabetically; the sorted array of hashes this replaces (8 bytes a word) spent most of its
    build sorting them, and took twice the CPU on the first message that needed it (en 95 ->
    41 ms, de 190 -> 95 ms, fi 322 -> 173 ms) for the same answers.
    """

    def __init__(self, words: list[str]) -> None:
        if "\n" in "".join(words):  # none in wordfreq's lists, and never in a token
            words = [w for w in words if "\n" not in w]
        ordered = sorted(words)
        self._count = len(ordered)
        self._heads = ordered[::_BLOCK]
        self._blocks = [
            "\n" + "\n".join(ordered[i : i + _BLOCK]) + "\n" for i in range(0, len(ordered), _BLOCK)
        ]

    def __len__(self) -> int:
        return self._count

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str) or "\n" in word:
            return False
        i = bisect_right(self._heads, word) - 1
        return i >= 0 and f"\n{word}\n" in self._blocks[i]


@cache
def common_words(lang: str) -> CommonWords | None:
    """Words of ``lang`` at Zipf >= :data:`GUARD_ZIPF`, accents folded; None if unavailable.

    wordfreq's "large" list where it has one (the "small" lists stop at Zipf 3, which leaves
    "bagging" or "pouting" free to become "begging" and "posting"), read up to the frequency
    needed and no further (~80-200 ms a language, once per process).
    """
    spec = importlib.util.find_spec("wordfreq")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        import msgpack  # a dependency of wordfreq

        path = None
        for folder in spec.submodule_search_locations:
            for size in ("large", "small"):
                candidate = Path(folder) / "data" / f"{size}_{lang}.msgpack.gz"
                if candidate.is_file():
                    path = candidate
                    break
            if path is not None:
                break
        if path is None:
            return None
        # Bucket i holds words of frequency 10^(-i/100), i.e. Zipf 9 - i/100.
        last = int(round((9.0 - GUARD_ZIPF) * 100))
        words: list[str] = []
        with gzip.open(path, "rb") as fh:
            unpacker = msgpack.Unpacker(fh, raw=False)
            count = unpacker.read_array_header()
            header = unpacker.unpack()
            if not isinstance(header, dict) or header.get("format") != "cB":
                raise ValueError(f"unknown wordfreq format {header!r}")
            for _ in range(min(count - 1, last + 1)):
                words += unpacker.unpack()
        return CommonWords([fold(w) for w in words if len(w) >= MIN_TOKEN])
    except Exception as exc:  # a changed or broken data file disables corrections, not triage
        log.warning(
            "triage: wordfreq list for %s unusable (%s); no spelling corrections", lang, exc
        )
        return None


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class WordMapper:
    """Rewrites tokens onto one lexicon's words (stems, one-edit spelling mistakes)."""

    def __init__(
        self,
        vocabulary: Iterable[str],
        stems: Iterable[str],
        guard_lang: str,
        exempt: Iterable[str] = (),
        typos: bool = True,
    ) -> None:
        self.vocabulary = frozenset(vocabulary)
        self.stems = frozenset(stems)
        self._stem_lengths = sorted({len(s) for s in self.stems}, reverse=True)
        self.guard_lang = guard_lang
        self.typos = typos
        self.targets = frozenset(w for w in self.vocabulary if len(w) >= MIN_TARGET and w.isalpha())
        self._exempt = frozenset(exempt)
        self._index: dict[str, list[str]] = {}
        self._build_index()
        self._memo: dict[str, str] = {}  # words that change, and what they change to
        # Words that stay as they are: the vocabulary and every word resolved to itself.
        self._unchanged: set[str] = set(self.vocabulary)
        self._guard: CommonWords | None = None
        self._guard_loaded = False

    def restrict_targets(self, words: Iterable[str]) -> None:
        """Correct spelling towards ``words`` only (the cue words, not every stopword)."""
        self.targets = self.targets & frozenset(words)
        self._build_index()
        self._memo.clear()
        self._unchanged = set(self.vocabulary)

    def _build_index(self) -> None:
        self.targets = self.targets - self._exempt
        self._index = {}
        for w in sorted(self.targets):
            for d in _deletions(w):
                self._index.setdefault(d, []).append(w)

    def map(self, toks: list[str]) -> list[str]:
        """``toks`` with stems and corrections applied (the same list when nothing changes)."""
        # One set difference in C leaves only words never seen before or ones that change: on
        # live traffic that is usually nothing at all. (``set - set`` walks the message's few
        # words; ``difference_update`` would walk the whole vocabulary.)
        todo = set(toks) - self._unchanged
        if not todo:
            return toks
        memo = self._memo
        repl: dict[str, str] = {}
        for tok in todo:
            out = memo.get(tok)
            if out is None:
                out = self._resolve(tok)
                unchanged = self._unchanged
                if len(memo) + len(unchanged) - len(self.vocabulary) >= MEMO_LIMIT:
                    memo.clear()
                    unchanged = self._unchanged = set(self.vocabulary)
                if out == tok:
                    unchanged.add(tok)
                    continue
                memo[tok] = out
            repl[tok] = out
        if not repl:
            return toks
        return [repl.get(t, t) for t in toks]

    def _resolve(self, tok: str) -> str:
        if len(tok) < MIN_TOKEN or not tok[0].isalpha():
            return tok
        stem = self._stem(tok)
        if stem is not None:
            return stem
        if _RUNS.search(tok):
            # "pleeease", "humaaan": a letter held down is emphasis, not a different word.
            two = _RUNS.sub(r"\1\1", tok)
            one = _RUNS.sub(r"\1", tok)
            for form in (two, one):
                if form in self.vocabulary:
                    return form
                stem = self._stem(form)
                if stem is not None:
                    return stem
            tok = two
        if not self.typos or not self.targets:
            return tok
        # Most unusual words are one edit from no cue word at all: only a word that would be
        # corrected needs the common-word list (loaded on first need, 20-300 ms a language),
        # which an English hub then never loads for the languages it misdetects now and then.
        corrected = self._correct(tok)
        if corrected is None:
            return tok
        guard = self._common()
        if guard is None or tok in guard:
            return tok
        return corrected

    def _stem(self, tok: str) -> str | None:
        stems = self.stems
        for n in self._stem_lengths:
            if n <= len(tok) and tok[:n] in stems:
                return tok[:n] + "*"
        return None

    def warm(self) -> None:
        """Load the common-word list now rather than at the first unusual word."""
        self._common()

    def _common(self) -> CommonWords | None:
        if not self._guard_loaded:
            self._guard = common_words(self.guard_lang)
            self._guard_loaded = True
        return self._guard

    def _correct(self, tok: str) -> str | None:
        """The cue word one edit away from ``tok`` (the alphabetically first of equals)."""
        candidates: set[str] = set(self._index.get(tok, ()))
        targets = self.targets
        index = self._index
        for d in _deletions(tok):
            if d in targets:
                candidates.add(d)
            found = index.get(d)
            if found:
                candidates.update(found)
        best = [w for w in sorted(candidates) if OSA.distance(tok, w, score_cutoff=1) <= 1]
        return best[0] if best else None
