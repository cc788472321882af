"""The words the knowledge-base ranker weighs, and its one stemmer.

Search itself is FTS5 (:mod:`store.kb`, whose ``STOP_WORDS`` is the one stop-word list:
what :func:`store.kb.terms` leaves is a question's words, here and in the search alike).
These lists decide how much each word counts when the ranker asks "does this article cover
what was asked?"; the bot reads them too, to tell a vague message from a question.
"""

from __future__ import annotations

import re
from functools import lru_cache

from store.kb import STOP_WORDS

WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

# Words that say what area a question is about but not what the question is.
GENERIC = frozenset(
    "card cards account accounts money pay paid paying payment payments app pennant bank use using "
    "used make made today yesterday week day time way thing things get support customer service ask "
    "asked asking said say says tell told want wanted find see look check know mean means meaning "
    "thing usually normally new".split()
)
# Feelings, waiting and "how long/much": they colour a question but do not say what it is about.
FEELINGS = frozenset(
    "angry upset annoyed furious frustrated frustrating ridiculous disappointed worried waiting waited "
    "weeks days months hours ages already again still so very sorry long soon much many often".split()
)
# Words that say something is wrong but not what.
VAGUE_WORDS = frozenset(
    "work working works worked doesnt dont isnt wont didnt broken problem problems issue issues error "
    "errors wrong stuck help question questions confused sure cant cannot never trouble hasnt havent "
    "wasnt werent arent".split()
)
# Products with several articles titled "Product: ...": words that show a question is about the
# product (``pay in 3`` itself is rewritten to "pay-in-3 instalment" before the search).
PRODUCT_WORDS: dict[str, frozenset[str]] = {
    "Pay-in-3": frozenset("instalment instalments installment installments bnpl klarna".split()),
}


# Words repeat (in articles, in questions): each is stemmed once per process.
@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude stem, enough to ask "does this article mention that word at all?".

    "declined"/"decline", "moved"/"move", "fees"/"fee" meet at the same five letters. The
    bot's thresholds were measured with this stemmer; drafts and the console's search use it
    too, so one word means the same to all three.
    """
    if len(word) > 4:
        for suffix in ("ing", "ed", "sses", "es", "s"):
            if word.endswith(suffix):
                word = word[: -len(suffix)] + ("ss" if suffix == "sses" else "")
                break
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word[:5]


def stems(text: str) -> frozenset[str]:
    """The stems of every word of ``text`` (no cap, no stop list): an article's vocabulary."""
    return frozenset(stem(w.replace("'", "")) for w in set(WORDS.findall(text.lower())))


def content_stems(text: str) -> frozenset[str]:
    """The stems of ``text``'s words that carry meaning: no stop words, none under three letters."""
    out = set()
    for w in WORDS.findall(text.lower()):
        w = w.replace("'", "")
        if len(w) > 2 and w not in STOP_WORDS:
            out.add(stem(w))
    return frozenset(out)


def product_of(title: str) -> str | None:
    """The product a title is scoped to ("Pay-in-3: returns and refunds" -> "Pay-in-3"), if any."""
    prefix = title.split(":", 1)[0] if ":" in title else ""
    return prefix if prefix in PRODUCT_WORDS else None
