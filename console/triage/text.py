"""Text normalisation, tokenisation and the phrase matcher every triage signal builds on.

Customer text is data: it may contain control characters, terminal escapes, invalid
surrogates or a megabyte of noise. Everything here is total (never raises on a ``str``) and
linear in the length of the text, because the hub runs it on every message before the bot
replies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from itertools import compress

from console.untrusted import MATCHING

# Longer texts are scored on their head and tail: a 1 MB paste says no more about the
# customer's mood than its first and last few thousand characters, and the hub must not stall.
MAX_CHARS = 8_000

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
# Invisible characters inside a word ("ig\u00adnore", "per\u200bson") and fullwidth letters
# read as the word they show, or a customer's words would slip past every lexicon.
_READ_AS_SHOWN = {**MATCHING, **_APOSTROPHES}
# Emoji and emoticons carry mood in short messages ("charged twice 😡"); the few that matter
# are single tokens, everything else outside ASCII words is ignored.
EMOJI = "😡😠🤬😤😒🙄😩😫😢😭😞😔☹🙁😕👎💩😣😖😑🤦😓😰😱😊🙂😀😃😄😁😍🥰❤💕👍🙏🎉🤗🙌"
# Words keep English contractions ("don't", "i'm", "bank's") whole; any other apostrophe splits,
# so French and Italian elisions ("l'argent", "dell'operatore") leave the word itself.
_WORD = "[a-z0-9\u00df-\u00f6\u00f8-\u00ff\u0100-\u017f]"
_TOKEN = re.compile(
    _WORD + "+(?:'(?:t|s|m|d|re|ve|ll)(?!" + _WORD + "))?|[!?]|:-?[()/|\\\\]|[,.;:]|[" + EMOJI + "]"
)
# Every token :func:`tokens` gives that is not a word (words start with a letter or digit):
# a word is then "not one of these", a test done in C.
MARKS = frozenset(
    [*"!?,.;:", *EMOJI, *(f":{nose}{mouth}" for nose in ("", "-") for mouth in "()/|\\")]
)
# The same for plain ASCII text (most messages), a third cheaper without the other alphabets.
_TOKEN_ASCII = re.compile(
    r"[a-z0-9]+(?:'(?:t|s|m|d|re|ve|ll)(?![a-z0-9]))?|[!?]|:-?[()/|\\]|[,.;:]"
)
# Accents folded for matching: customers type "manniska", "czlowiek", "tot" for "tôt" as often
# as the accented words, and lexicons list one spelling. Latin-1 and Latin Extended-A letters.
_ACCENTS = str.maketrans(
    {
        **dict.fromkeys("àáâãäåāăą", "a"),
        **dict.fromkeys("çćĉċč", "c"),
        **dict.fromkeys("ďđ", "d"),
        **dict.fromkeys("èéêëēĕėęě", "e"),
        **dict.fromkeys("ĝğġģ", "g"),
        **dict.fromkeys("ìíîïĩīĭįı", "i"),
        **dict.fromkeys("ñńņňŉ", "n"),
        **dict.fromkeys("òóôõöøōŏő", "o"),
        **dict.fromkeys("ŕŗř", "r"),
        **dict.fromkeys("śŝşš", "s"),
        **dict.fromkeys("ţťŧ", "t"),
        **dict.fromkeys("ùúûüũūŭůűų", "u"),
        **dict.fromkeys("ýÿŷ", "y"),
        **dict.fromkeys("źżž", "z"),
        "æ": "ae",
        "œ": "oe",
        "ß": "ss",
        "ł": "l",
        "ĺ": "l",
        "ľ": "l",
        "ŀ": "l",
        "ķ": "k",
        "ĵ": "j",
        "ĥ": "h",
        "ħ": "h",
        "ŵ": "w",
        "þ": "th",
        "ð": "d",
    }
)
_URL = re.compile(r"(?:https?://|www\.)\S*")
# Anonymisation placeholders ("#NAME#", "#PRS_ORG#", "#NUMBER#") stand for something the
# customer wrote, not for the word they spell: each becomes one neutral word.
_PLACEHOLDER = re.compile(r"#[a-z_]+#")
_PLACEHOLDER_CAPS = re.compile(r"#[A-Z_]+#")
_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")
_LETTERS = re.compile(r"[A-Za-z]")
_REPEAT_PUNCT = re.compile(r"[!?]{2,}|\?!|!\?")
# Slang spellings that would otherwise hide a negation or a pronoun from the lexicons.
_SPELLING = {
    "dont": "don't",
    "doesnt": "doesn't",
    "didnt": "didn't",
    "cant": "can't",
    "wont": "won't",
    "isnt": "isn't",
    "wasnt": "wasn't",
    "arent": "aren't",
    "havent": "haven't",
    "hasnt": "hasn't",
    "couldnt": "couldn't",
    "shouldnt": "shouldn't",
    "wouldnt": "wouldn't",
    "aint": "ain't",
    "im": "i'm",
    "ive": "i've",
    "youre": "you're",
    "u": "you",
    "ur": "your",
    "r": "are",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "wanna": "want",
    "gonna": "going",
    "gotta": "have",
    "wtf": "wtf",
    "idk": "idk",
}


def clip(text: str) -> str:
    """Head and tail of an over-long text, so cost stays bounded whatever arrives."""
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return text[:half] + " \n " + text[-half:]


_SPELLING_KEYS = frozenset(_SPELLING)

# "do not" is written as often as "don't": fold the long forms so lexicons list one spelling.
_FOLD: dict[str, str] = {
    "do not": "don't",
    "did not": "didn't",
    "does not": "doesn't",
    "is not": "isn't",
    "are not": "aren't",
    "was not": "wasn't",
    "were not": "weren't",
    "have not": "haven't",
    "has not": "hasn't",
    "will not": "won't",
    "would not": "wouldn't",
    "could not": "couldn't",
    "should not": "shouldn't",
    "can not": "cannot",
    "i am": "i'm",
    "you are": "you're",
    "that is": "that's",
    "it is": "it's",
}
_FOLD_PAIRS: dict[tuple[str, str], str] = {
    (first, second): short for (first, second), short in ((k.split(), v) for k, v in _FOLD.items())
}
_FOLD_SECOND = frozenset(second for _, second in _FOLD_PAIRS)
# _fold_pairs relies on no folded form being the first word of another pair.
assert {first for first, _ in _FOLD_PAIRS}.isdisjoint(_FOLD.values())


def tokens(text: str, fold: bool = False) -> list[str]:
    """Lower-case word tokens plus ``! ? , . ; :`` marks, with common slang spellings normalised.

    Punctuation is kept as tokens so clause boundaries can stop negation windows. ``fold``
    also folds accents ("människa" -> "manniska"), as the lexicons are matched.
    """
    low = text.lower()
    rx = _TOKEN_ASCII
    if not low.isascii():
        rx = _TOKEN
        low = low.translate(_READ_AS_SHOWN)
        if fold:
            low = low.translate(_ACCENTS)
    elif "`" in low:
        low = low.translate(_APOSTROPHES)
    if "://" in low or "www." in low:
        # Links are not words the customer wrote (and "https:/" is not a frown).
        low = _URL.sub(" ", low)
    if "#" in low:
        low = _PLACEHOLDER.sub(" something ", low)
    toks = rx.findall(low)
    if not _FOLD_SECOND.isdisjoint(toks):
        toks = _fold_pairs(toks)
    if not _SPELLING_KEYS.isdisjoint(toks):
        get = _SPELLING.get
        toks = [get(t, t) for t in toks]
    return toks


def _fold_pairs(toks: list[str]) -> list[str]:
    """ "do" "not" -> "don't", "i" "am" -> "i'm" (see :data:`_FOLD`), on tokens: a regex over
    the whole text cost more than the tokenising itself, and so did a loop over every token,
    so the second words are found by ``list.index`` (in C) and only their pairs looked at."""
    at: list[int] = []
    for second in _FOLD_SECOND:
        i = -1
        for _ in range(toks.count(second)):
            i = toks.index(second, i + 1)
            if i:  # the first token follows nothing
                at.append(i)
    at.sort()
    folds: list[tuple[int, str]] = []
    pairs = _FOLD_PAIRS
    taken = -1
    for i in at:
        # A word just folded into the one before it ("it is" -> "it's") does not start
        # another pair ("it is not" stays "it's not"); no folded form is a first word.
        if i - 1 == taken:
            continue
        folded = pairs.get((toks[i - 1], toks[i]))
        if folded is not None:
            folds.append((i, folded))
            taken = i
    if not folds:
        return toks
    out: list[str] = []
    start = 0
    for i, folded in folds:
        out.extend(toks[start : i - 1])
        out.append(folded)
        start = i + 1
    out.extend(toks[start:])
    return out


def caps_words(text: str) -> int:
    """Number of all-capital words of three or more letters (shouting, not acronyms alone)."""
    if "#" in text:
        text = _PLACEHOLDER_CAPS.sub(" ", text)  # "#NAME#" is anonymisation, not shouting
    return len(_CAPS_WORD.findall(text))


_UPPER = bytes(range(ord("A"), ord("Z") + 1))


def capitals(text: str) -> int:
    """Number of ASCII capitals (an upper bound on what :func:`caps_words` can find, in C)."""
    data = text.encode("utf-8", "surrogatepass")
    return len(data) - len(data.translate(None, _UPPER))


def letter_count(text: str) -> int:
    """Number of ASCII letters, to tell a shouted sentence from one acronym."""
    return len(_LETTERS.findall(text))


def punct_bursts(text: str) -> int:
    """Runs like ``!!`` or ``?!``: emphasis that usually means exasperation in support chats."""
    # A run of two exists only where one of these pairs does (substring tests in C).
    if "!!" in text or "??" in text or "?!" in text or "!?" in text:
        return len(_REPEAT_PUNCT.findall(text))
    return 0


def fold(word: str) -> str:
    """One lower-case word with its accents folded (no tokenising: cheap for long word lists)."""
    low = word.lower()
    return low if low.isascii() else low.translate(_ACCENTS)


def tokens_of(word: str) -> str:
    """Normalise one lexicon word the way :func:`tokens` normalises text (accents folded).

    A word ending in ``*`` is a stem ("konto*": konto, konta, kontem); it stays a stem.
    """
    if word == "*":
        return word
    if word.endswith("*"):
        stem = tokens(word[:-1], fold=True)
        return (stem[0] + "*") if stem else word
    found = tokens(word, fold=True)
    return found[0] if found else word


# Pattern syntax (tokens separated by spaces): ``a|b`` alternatives, a trailing ``?`` marks an
# optional token, ``*`` matches any one token, ``stem*`` any word the language's word mapper
# maps to that stem. ``speak|talk to a|an? real|live? person``.
Slots = tuple[tuple[frozenset[str], bool], ...]  # (choices, optional) per pattern position


def compile_pattern(pattern: str, canon: Callable[[str], str] | None = None) -> list[Slots]:
    """Pattern -> slot sequences whose first slot is required (leading optionals unfolded).

    ``canon`` maps each normalised word as the language's word mapper maps text (stems).
    """
    slots: list[tuple[frozenset[str], bool]] = []
    for part in pattern.split():
        optional = part.endswith("?") and len(part) > 1
        words = (tokens_of(c) for c in part.rstrip("?").split("|") if c)
        choices = frozenset(canon(w) for w in words) if canon is not None else frozenset(words)
        if choices:
            slots.append((choices, optional))
    out: list[Slots] = []
    while slots:
        first, optional = slots[0]
        out.append(((first, False), *slots[1:]))
        if not optional:
            break
        slots = slots[1:]
    return out


class PhraseMatcher:
    """Find hand-written phrases in a token list in one pass.

    Each pattern stays compiled as a short list of slots (no cartesian expansion of the whole
    pattern, so hundreds of thousands of phrasings cost a few kilobytes). Most patterns are
    indexed by the pairs of words their first two slots accept, so a position costs one
    lookup instead of trying every pattern that starts with a common word ("i", "no", "get")
    and failing at the second; one-word patterns by their word; the few whose second slot is
    optional or a wildcard by their first word. A C-speed set intersection skips texts that
    contain no first word at all.
    """

    def __init__(
        self, lexicon: Mapping[str, Iterable[str]], canon: Callable[[str], str] | None = None
    ) -> None:
        # Labels in lexicon order, so hits come out in the same order whatever the index.
        self._single: dict[str, list[str]] = {}
        self._pairs: dict[tuple[str, str], list[_Entry]] = {}
        self._other: dict[str, list[_Entry]] = {}
        for label, patterns in lexicon.items():
            for pattern in patterns:
                for slots in compile_pattern(pattern, canon):
                    self._add(slots, label)
        firsts = set(self._single) | set(self._other) | {a for a, _ in self._pairs}
        self.first = frozenset(firsts - {"*"})
        # Per first word, all a position needs in one lookup: its one-word labels, its
        # patterns with an optional or wildcard second slot, and the words that can follow it.
        seconds: dict[str, set[str]] = {}
        for a, b in self._pairs:
            seconds.setdefault(a, set()).add(b)
        self._heads: dict[str, _Head] = {
            tok: (
                self._single.get(tok),
                self._other.get(tok),
                frozenset(seconds[tok]) if tok in seconds else _NOTHING,
            )
            for tok in self.first
        }

    def _add(self, slots: Slots, label: str) -> None:
        head = slots[0][0]
        if len(slots) == 1:
            for tok in head:
                labels = self._single.setdefault(tok, [])
                if label not in labels:
                    labels.append(label)
            return
        second, optional = slots[1]
        if optional or "*" in second or "*" in head:
            entry = (slots, 1, label, not any(opt for _, opt in slots))
            for tok in head:
                self._other.setdefault(tok, []).append(entry)
            return
        # The rest of the pattern after its first two words.
        entry = (slots, 2, label, not any(opt for _, opt in slots[2:]))
        for a in head:
            for b in second:
                self._pairs.setdefault((a, b), []).append(entry)

    def find(self, toks: list[str]) -> list[tuple[int, int, str]]:
        """``(start, end, label)`` for phrase occurrences (the longest per label and start)."""
        first = self.first
        if first.isdisjoint(toks):
            return []
        hits: list[tuple[int, int, str]] = []
        n = len(toks)
        heads = self._heads
        last = n - 1
        for i in compress(range(n), map(first.__contains__, toks)):
            tok = toks[i]
            labels, others, seconds = heads[tok]
            paired = i < last and toks[i + 1] in seconds
            if labels is None and others is None and not paired:
                continue  # a common word ("i", "the") not followed by a phrase's second word
            best: dict[str, int] = {}
            if labels is not None:
                for label in labels:
                    best[label] = i + 1
            if paired:
                _extend(best, self._pairs[tok, toks[i + 1]], toks, i, n)
            if others is not None:
                _extend(best, others, toks, i, n)
            for label, end in best.items():
                hits.append((i, end, label))
        return hits


_NOTHING: frozenset[str] = frozenset()


# A pattern in the index: its slots, the slot matching resumes at, its label, and whether the
# rest has no optional slot (then a flat loop suffices).
_Entry = tuple[Slots, int, str, bool]
_Head = tuple[list[str] | None, list[_Entry] | None, frozenset[str]]


def _extend(best: dict[str, int], entries: list[_Entry], toks: list[str], i: int, n: int) -> None:
    """Record in ``best`` the longest end per label of ``entries`` matched at ``toks[i]``."""
    for slots, k, label, flat in entries:
        if flat:
            end = i + len(slots)
            if end > n:
                continue
            j = i + k
            for choices, _ in slots[k:]:
                t = toks[j]
                if t not in choices and "*" not in choices:
                    break
                j += 1
            else:
                if end > best.get(label, -1):
                    best[label] = end
            continue
        end = _longest(slots, k, toks, i + k, n)
        if end >= 0 and end > best.get(label, -1):
            best[label] = end


def _longest(slots: Slots, k: int, toks: list[str], j: int, n: int) -> int:
    """End of the longest match of ``slots[k:]`` at ``toks[j:]``, or -1."""
    if k == len(slots):
        return j
    choices, optional = slots[k]
    end = -1
    if j < n and (toks[j] in choices or "*" in choices):
        end = _longest(slots, k + 1, toks, j + 1, n)
    if optional:
        end = max(end, _longest(slots, k + 1, toks, j, n))
    return end
