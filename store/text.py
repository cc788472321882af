"""What the store accepts as text: valid Unicode without NUL, not empty, not too long.

Python strings can hold lone surrogates (``"\\ud800"`` from a JSON escape, ``"\\udcff"`` from
an argv byte that is not UTF-8); SQLite cannot store them and ``sqlite3`` fails with a
``UnicodeEncodeError`` deep in a write. Every text field is checked here first, so the caller
gets :class:`InvalidInput` with a sentence instead.
"""

from __future__ import annotations

from store.errors import InvalidInput

MAX_TEXT = 20_000
MAX_NAME = 64


def unicode_problem(text: str, *, from_bytes: bool = True) -> str | None:
    """Why ``text`` is not valid Unicode (a lone surrogate and where), or ``None`` if it is.

    :param from_bytes: ``text`` may have been decoded from bytes with ``surrogateescape``
        (argv, file names), so U+DC80..U+DCFF is named as the byte it stands for; ``False``
        for text from JSON, where such a character can only be a ``\\u`` escape
    """
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if from_bytes and 0xDC80 <= code <= 0xDCFF:
            # Python's stand-in for an undecodable byte (argv, file names).
            return f"is not valid UTF-8 (byte 0x{code - 0xDC00:02x} at character {exc.start})"
        return f"is not valid Unicode (lone surrogate U+{code:04X} at character {exc.start})"
    return None


def valid_unicode(text: str, what: str) -> str:
    """``text`` unchanged, or :class:`InvalidInput` naming ``what`` when it is not valid Unicode
    or holds a NUL character."""
    problem = unicode_problem(text)
    if problem:
        raise InvalidInput(f"{what} {problem}")
    if "\x00" in text:
        # PostgreSQL's text cannot hold U+0000 and SQLite's can: refused on both, so a store
        # never keeps what the other would refuse (and no chat or name needs one).
        raise InvalidInput(
            f"{what} holds a NUL character (U+0000 at character {text.index(chr(0))})"
        )
    return text


def checked_text(text: object, what: str = "text", limit: int = MAX_TEXT) -> str:
    """A message or note: a non-blank string of valid Unicode, at most ``limit`` characters."""
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be a string")
    if not text.strip():
        raise InvalidInput(f"{what} is empty")
    if len(text) > limit:
        raise InvalidInput(f"{what} is too long ({len(text)} characters, limit {limit})")
    return valid_unicode(text, what)


def checked_name(name: object, what: str = "agent name") -> str:
    """A person's name or an account: non-blank valid Unicode, at most 64 characters, stripped."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{what} is empty")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{what} is too long (limit {MAX_NAME} characters)")
    return valid_unicode(name.strip(), what)


def optional_key(value: object, what: str, limit: int) -> str | None:
    """An optional identifier (idempotency key, external id): ``None`` or valid Unicode."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{what} must be a string of at most {limit} characters")
    return valid_unicode(value, what)
