"""Text from outside (customers, models) made plain: no terminal escape sequences, no control
characters, no invisible direction overrides.

Customer text and model output are data (DESIGN section 10). What a terminal would act on
(``ESC [2J``, an OSC title, a bell) or a browser would turn around (U+202E) is taken out
before the text is shown, stored as a reply or given to a model. Here, below the engines that
use it (the drafts, the bot), so that each cleans the same way.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MATCHING", "StreamCleaner", "clean", "for_matching"]

# Terminal escape sequences (CSI, OSC, two-byte ESC) first, then any control character left.
_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """Drop terminal escape sequences and control characters from customer-supplied text."""
    return _CONTROL.sub("", _ESCAPE.sub("", unicodedata.normalize("NFC", text)))


# The start of an escape sequence that the next piece of a stream may complete: a lone ESC, a
# CSI without its final byte, an OSC without its terminator (or with half of ESC \\).
_PARTIAL = re.compile(r"(?:\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?|\x9b[0-?]*[ -/]*)\Z")


class StreamCleaner:
    """:func:`clean` for text that arrives in pieces (a model's stream): a sequence split
    between two pieces is held back until it is whole, so no part of it is left as text
    (cleaned piece by piece, ``"\\x1b"`` + ``"[31m"`` left "[31m" in the draft)."""

    HOLD = 64
    """Longer than this, a sequence is not waited for (the rest of it then shows as text)."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        """The text of ``piece`` (and what was held) that can be shown now, cleaned."""
        text, self._held = self._held + piece, ""
        start = max(text.rfind("\x1b"), text.rfind("\x9b"))
        if start != -1 and len(text) - start <= self.HOLD and _PARTIAL.match(text, start):
            text, self._held = text[:start], text[start:]
        return clean(text)

    def close(self) -> str:
        """The end of the stream: what was held, cleaned."""
        text, self._held = self._held, ""
        return clean(text)


# Characters a reader does not see and a model reads straight through: soft hyphen, zero-width
# space and joiners, word joiner and invisible operators, BOM, direction marks, overrides and
# isolates. Inside a word ("ig\u00adnore previous instructions") they hide it from any
# matching by words, while the text still says it to a person or a model.
_INVISIBLE = [0x00AD, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F)]
_INVISIBLE += [*range(0x2060, 0x2065), *range(0x2066, 0x206A), 0xFEFF]
MATCHING: dict[int, int | None] = dict.fromkeys(_INVISIBLE)
"""A ``str.translate`` table for text about to be matched by words: the invisible characters
go, and fullwidth ASCII ("ｉｇｎｏｒｅ") reads as the ASCII it shows."""
MATCHING.update({0xFF01 + i: 0x21 + i for i in range(0x5E)})


def for_matching(text: str) -> str:
    """``text`` as it reads, for matching by words (see :data:`MATCHING`)."""
    return text if text.isascii() else text.translate(MATCHING)
