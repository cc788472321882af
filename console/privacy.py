"""Redact personal data before text leaves the machine for an LLM.

:func:`redact` replaces card numbers, IBANs, national identity numbers, email addresses and
phone numbers with typed placeholders (``[card]``, ``[iban]``, ``[id]``, ``[email]``,
``[phone]``, and ``[cvv]`` for a named card security code), so a model still sees *that* the customer gave a card number, never which.

Every candidate found by a cheap regular expression is confirmed by a checksum or a
numbering plan (Luhn for cards, ISO 7064 for IBANs, python-stdnum for national ids,
``phonenumbers`` for phones; a card security code only when named), which keeps amounts, dates and order numbers intact. Placeholders
contain no digits, so later passes never re-match what an earlier pass replaced. Text without
digits or ``@`` returns at once: most chat messages cost a few microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from phonenumbers import Leniency, PhoneNumberMatcher
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.fr import nir as fr_nir
from stdnum.it import codicefiscale as it_cf
from stdnum.se import personnummer as se_pnr
from stdnum.us import ssn as us_ssn

CARD, IBAN, ID, EMAIL, PHONE, CVV = "[card]", "[iban]", "[id]", "[email]", "[phone]", "[cvv]"

# National formats are read in these regions; "+<country code>" numbers match in any of them.
PHONE_REGIONS = ("GB", "US", "IE", "DE", "FR", "ES", "IT", "NL")

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Two letters, two check digits, then 11-30 alphanumerics in groups (spaces or dashes allowed).
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]){11,30}\b")
# 13-19 digits, optionally grouped by single spaces or dashes (4-4-4-4, 4-6-5 for Amex...).
_CARD = re.compile(r"(?<![\d.,])\d(?:[ \-]?\d){12,18}(?![\d]|[.,]\d)")
# SSNs with separators anywhere; nine bare digits only right after "SSN" (else an order number).
_SSN = re.compile(r"(?<![\d\-])\d{3}([ \-])\d{2}\1\d{4}(?![\d\-])")
_SSN_BARE = re.compile(
    r"(\b(?:ssn|social\s+security(?:\s+number)?)\W{0,5})(\d{9})\b", re.IGNORECASE
)
# The card security code, when named as such.
_CVV = re.compile(r"(\b(?:cvv2?|cvc2?|csc|security\s+code)\W{0,5})(\d{3,4})\b", re.IGNORECASE)
# UK National Insurance number: two letters (not D, F, I, Q, U, V; second not O), six digits, A-D.
_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
    re.IGNORECASE,
)
_ES_DNI = re.compile(r"\b[XYZxyz]?\d{7,8}[ \-]?[A-Za-z]\b")
_IT_CF = re.compile(r"\b[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z]\d{3}[A-Za-z]\b")
_FR_NIR = re.compile(r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b")
_SE_PNR = re.compile(r"(?<![\d\-])(?:\d{2})?\d{6}[\-+]\d{4}(?![\d\-])")
_DIGIT_RUN = re.compile(r"\d(?:[\s().\-/+]{0,3}\d){6,}")
# A number right after these words is a reference the customer wants us to look up.
_REFERENCE = re.compile(
    r"(?:order|ref|reference|invoice|transaction|tracking|booking|case|ticket|receipt|"
    r"payment|id)\s*(?:no\.?|number|num|#|:)?\s*[:#]?\s*$",
    re.IGNORECASE,
)


def _valid_card(digits: str) -> bool:
    # All-same digits ("0000 0000 0000 0000") pass Luhn but are filler, and no card number
    # starts with 0 (that is an international phone prefix like 0044).
    return (
        13 <= len(digits) <= 19
        and digits[0] != "0"
        and len(set(digits)) > 1
        and luhn.is_valid(digits)
    )


def _sub(
    pattern: re.Pattern[str], text: str, placeholder: str, check: Callable[[str], bool]
) -> str:
    def repl(m: re.Match[str]) -> str:
        return placeholder if check(m.group(0)) else m.group(0)

    return pattern.sub(repl, text)


def _compact(value: str) -> str:
    return re.sub(r"[\s\-]", "", value)


def _card(value: str) -> bool:
    return _valid_card(_compact(value))


def _iban(value: str) -> bool:
    return std_iban.is_valid(_compact(value).upper())


def _ssn(value: str) -> bool:
    return us_ssn.is_valid(_compact(value))


def _dni(value: str) -> bool:
    v = _compact(value).upper()
    return es_nie.is_valid(v) if v[0] in "XYZ" else es_dni.is_valid(v)


def _phones(text: str) -> str:
    # The matcher is slow on long text, so it reads only short windows around digit runs.
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_RUN.finditer(text):
        lo = max(0, run.start() - 2)
        window = text[lo : run.end() + 1]
        if _REFERENCE.search(text[max(0, lo - 30) : run.start()]):
            continue
        for region in PHONE_REGIONS:
            found = [
                (lo + m.start, lo + m.end)
                for m in PhoneNumberMatcher(window, region, leniency=Leniency.VALID)
            ]
            if found:
                spans.extend(found)
                break
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append(PHONE)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _sub_prefix(
    pattern: re.Pattern[str], text: str, placeholder: str, check: Callable[[str], bool]
) -> str:
    """Like :func:`_sub`, but a greedy match that ran into the next word or number keeps
    its longest valid prefix of whole groups ("GB82 WEST ... 32 thanks")."""

    def repl(m: re.Match[str]) -> str:
        value = m.group(0)
        cuts = [i.start() for i in re.finditer(r"[ \-]", value)]
        for end in [len(value), *reversed(cuts)]:
            if check(value[:end]):
                return placeholder + value[end:]
        return value

    return pattern.sub(repl, text)


def redact(text: str) -> str:
    """Replace personal data in ``text`` with typed placeholders; everything else is kept.

    >>> redact("card 4111 1111 1111 1111, mail me at maya@example.com")
    'card [card], mail me at [email]'
    """
    if not text:
        return text
    has_at = "@" in text
    if not has_at and not any(c.isdigit() for c in text):
        return text
    if has_at:
        text = _EMAIL.sub(EMAIL, text)
    text = _sub_prefix(_IBAN, text, IBAN, _iban)
    text = _sub_prefix(_CARD, text, CARD, _card)
    text = _sub(_SSN, text, ID, _ssn)
    text = _SSN_BARE.sub(
        lambda m: m.group(1) + ID if us_ssn.is_valid(m.group(2)) else m.group(0), text
    )
    text = _CVV.sub(lambda m: m.group(1) + CVV, text)
    text = _sub(_NINO, text, ID, lambda v: True)
    text = _sub(_ES_DNI, text, ID, _dni)
    text = _sub(_IT_CF, text, ID, lambda v: it_cf.is_valid(v.upper()))
    text = _sub(_FR_NIR, text, ID, lambda v: fr_nir.is_valid(_compact(v)))
    text = _sub(_SE_PNR, text, ID, se_pnr.is_valid)
    text = _phones(text)
    return text


def contains_pii(text: str) -> bool:
    """True when :func:`redact` would change ``text``."""
    return redact(text) != text


__all__ = ["CARD", "CVV", "EMAIL", "IBAN", "ID", "PHONE", "PHONE_REGIONS", "contains_pii", "redact"]
