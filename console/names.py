"""How Tandem addresses people: one rule for the first name the bot, drafts and prompts use.

A customer's or agent's name comes from outside (an integration's ``customer.name``, an
account's login), so it is data: a handle ("guest-4821"), a role word ("Root", "Customer") or
anything with digits, symbols or control characters is not a name to greet someone with, and
the reply goes without one rather than read like a machine wrote it.
"""

from __future__ import annotations

import re
import unicodedata

# Role and account words, not names: "my name is Root" or "Hi Guest" would read as a bot wrote it.
_NOT_A_NAME = frozenset(
    {
        "guest",
        "customer",
        "user",
        "anonymous",
        "unknown",
        "visitor",
        "anon",
        "agent",
        "root",
        "admin",
        "administrator",
        "operator",
        "support",
        "test",
        "demo",
    }
)
_MAX_CHARS = 30
_EDGE_PUNCTUATION = ",;:!?\"'()[]{}"
# Account names have no spaces ("ana.lopez", "ana_lopez"): dots and underscores part words too.
_WORD_BREAK = re.compile(r"[\s._]+")


def first_name(full_name: str | None) -> str:
    """The first name to address someone by, or ``""`` when there is none fit to use.

    The first word (words part at spaces, dots and underscores: "ana.lopez" is Ana), without
    surrounding punctuation, made only of letters (``-`` and ``'`` inside allowed:
    "Anne-Marie", "O'Neil"), at most 30 characters, not a role word; an all-lower-case one is
    capitalised ("maya patel" -> "Maya"). An all-lower-case hyphenated word is a login
    ("ana-lopez"), of which the part before the hyphen is the name.
    """
    # NFC first: a decomposed accent ("e" + U+0301) is not a letter on its own.
    words = [w for w in _WORD_BREAK.split(unicodedata.normalize("NFC", full_name or "")) if w]
    if not words:
        return ""
    word = words[0].strip(_EDGE_PUNCTUATION)
    if "-" in word and word.islower():
        word = word.split("-", 1)[0]
    if not word or len(word) > _MAX_CHARS:
        return ""
    if not word.replace("-", "").replace("'", "").isalpha():
        return ""
    if word.casefold() in _NOT_A_NAME:
        return ""
    return word if any(c.isupper() for c in word) else word.capitalize()
