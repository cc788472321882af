"""The Porter stemmer exactly as SQLite FTS5's ``porter`` tokenizer applies it, in Python.

:mod:`store.kb_bm25` stems a question's words to look them up in its copy of the full-text
index; asking SQLite for each new word cost more than the rest of a search. This follows FTS5's
rules (``fts5_porter.c``: tokens under 3 or over 64 bytes pass through; "y" is a vowel after
a consonant; steps 1a to 5b), and was compared with FTS5 itself on 976,034 words (every word
of customer-messages.csv and our articles, with and without 60 suffixes, and every string of
up to four of 18 letters with and without -ed, -ing, -es): all equal. It is used for ASCII
words only (what unicode61 does to other letters stays with SQLite).
"""

from __future__ import annotations

from collections.abc import Callable

_VOWELS = frozenset("aeiou")


def _is_vowel(c: str, y_is_vowel: bool) -> bool:
    return c in _VOWELS or (y_is_vowel and c == "y")


def _gobble_vc(s: str, start: int, prev_consonant: bool) -> int:
    """The index just past the first vowel then consonant in ``s[start:]``, or 0 (none)."""
    consonant = prev_consonant
    n = len(s)
    i = start
    while i < n:
        consonant = not _is_vowel(s[i], consonant)
        if not consonant:
            break
        i += 1
    i += 1
    while i < n:
        consonant = not _is_vowel(s[i], consonant)
        if consonant:
            return i + 1
        i += 1
    return 0


def _m_gt0(s: str) -> bool:
    return _gobble_vc(s, 0, False) != 0


def _m_gt1(s: str) -> bool:
    n = _gobble_vc(s, 0, False)
    return bool(n) and _gobble_vc(s, n, True) != 0


def _m_eq1(s: str) -> bool:
    n = _gobble_vc(s, 0, False)
    return bool(n) and _gobble_vc(s, n, True) == 0


def _o_star(s: str) -> bool:
    if not s or s[-1] in "wxy":
        return False
    mask = 0
    consonant = False
    for c in s:
        consonant = not _is_vowel(c, consonant)
        mask = (mask << 1) + consonant
    return (mask & 7) == 5


def _has_vowel(s: str) -> bool:
    return any(_is_vowel(c, i > 0) for i, c in enumerate(s))


def _m_gt1_s_or_t(s: str) -> bool:
    return s[-1:] in ("s", "t") and _m_gt1(s)


# (suffix, replacement), longest first where one suffix ends another ("ational"/"tional"):
# the first suffix a word ends with decides, whether or not its condition holds.
_STEP2 = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("logi", "log"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
)
_STEP3 = (
    ("ical", "ic"),
    ("ness", ""),
    ("icate", "ic"),
    ("iciti", "ic"),
    ("ful", ""),
    ("ative", ""),
    ("alize", "al"),
)
_STEP4 = (
    "al",
    "ance",
    "ence",
    "er",
    "ic",
    "able",
    "ible",
    "ant",
    "ement",
    "ment",
    "ent",
    "ion",
    "ou",
    "ism",
    "ate",
    "iti",
    "ous",
    "ive",
    "ize",
)


def _by_length(rules: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(rules, key=lambda r: -len(r[0])))


def _replace(s: str, rules: tuple[tuple[str, str], ...], condition: Callable[[str], bool]) -> str:
    for suffix, replacement in rules:
        if len(s) > len(suffix) and s.endswith(suffix):
            stem = s[: -len(suffix)]
            return stem + replacement if condition(stem) else s
    return s


def porter(word: str) -> str:
    """The stem FTS5's porter tokenizer makes of one lower-case ASCII token."""
    if len(word) < 3 or len(word) > 64:
        return word
    s = word
    # Step 1a: plurals.
    if s[-1] == "s":
        if s[-2] == "e":
            if (len(s) > 4 and s[-4:-2] == "ss") or (len(s) > 3 and s[-3] == "i"):
                s = s[:-2]
            else:
                s = s[:-1]
        elif s[-2] != "s":
            s = s[:-1]
    # Step 1b: -eed, -ed, -ing.
    removed = False
    if len(s) > 3 and s.endswith("eed"):
        if _m_gt0(s[:-3]):
            s = s[:-1]
    elif len(s) > 2 and s.endswith("ed"):
        if _has_vowel(s[:-2]):
            s = s[:-2]
            removed = True
    elif len(s) > 3 and s.endswith("ing"):
        if _has_vowel(s[:-3]):
            s = s[:-3]
            removed = True
    if removed:
        if len(s) > 2 and s[-2:] in ("at", "bl", "iz"):
            s += "e"
        else:
            c = s[-1]
            if len(s) >= 2 and not _is_vowel(c, False) and c not in "lsz" and c == s[-2]:
                s = s[:-1]
            elif _m_eq1(s) and _o_star(s):
                s += "e"
    # Step 1c: -y after a vowel somewhere before it.
    if s[-1] == "y" and _has_vowel(s[:-1]):
        s = s[:-1] + "i"
    s = _replace(s, _STEP2_SORTED, _m_gt0)
    s = _replace(s, _STEP3_SORTED, _m_gt0)
    for suffix in _STEP4_SORTED:
        if len(s) > len(suffix) and s.endswith(suffix):
            stem = s[: -len(suffix)]
            ok = _m_gt1_s_or_t(stem) if suffix == "ion" else _m_gt1(stem)
            if ok:
                s = stem
            break
    # Step 5a: a final -e.
    if s[-1] == "e":
        stem = s[:-1]
        if _m_gt1(stem) or (_m_eq1(stem) and not _o_star(stem)):
            s = stem
    # Step 5b: -ll.
    if len(s) > 1 and s[-1] == "l" and s[-2] == "l" and _m_gt1(s[:-1]):
        s = s[:-1]
    return s


_STEP2_SORTED = _by_length(_STEP2)
_STEP3_SORTED = _by_length(_STEP3)
_STEP4_SORTED = tuple(sorted(_STEP4, key=lambda x: -len(x)))
