"""Redact personal data before text leaves the machine for an LLM.

:func:`redact` replaces personal data with typed placeholders, so a model still sees *that*
the customer gave a card number, never which:

- ``[card]`` card numbers with any separators (spaces, dots, dashes, slashes), Luhn-checked;
  13-19 digits right after "card number" even when the check fails (a typo is still a card);
- ``[iban]``, ``[id]`` (national ids), ``[email]``;
- ``[phone]`` phone numbers: valid in a national plan (``phonenumbers``), any possible number
  written with ``+`` or ``00`` and a country code, and possible numbers after "call", "phone",
  "mobile", "number"...;
- ``[cvv]`` a card security code named as such ("cvv 123", "my cvc is 123", "123 is the
  security code");
- ``[code]`` one-time and verification codes, ``[pin]`` a PIN, next to their words;
- ``[sort code]`` and ``[account]`` a UK sort code and account number next to their words;
- ``[password]`` whatever follows "password is" / "password:".

docs/redaction.md has the table with examples. Numbers with no such words or checksum stay
(amounts, dates, times, order and reference numbers). Placeholders contain no digits, so later
passes never re-match what an earlier pass replaced. Text without digits, ``@`` or a password
word returns at once: most chat messages cost a few microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import phonenumbers
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
CODE, PIN, SORT_CODE, ACCOUNT, PASSWORD = (
    "[code]",
    "[pin]",
    "[sort code]",
    "[account]",
    "[password]",
)

# National formats are read in these regions; "+<country code>" numbers match in any of them.
PHONE_REGIONS = ("GB", "US", "IE", "DE", "FR", "ES", "IT", "NL")

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Two letters, two check digits, then 11-30 alphanumerics in groups (spaces or dashes allowed).
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]){11,30}\b")
# 13-19 digits, grouped by spaces, dashes, dots or slashes (4-4-4-4, 4-6-5 for Amex, "4111 -
# 1111 ..."). A dot or comma right before or after a digit run is an amount's, not a card's.
_SEP = r"(?:\s{0,2}[\-./]\s{0,2}|\s{1,2})?"
_CARD = re.compile(rf"(?<![\d.,])\d(?:{_SEP}\d){{12,18}}(?![\d]|[.,]\d)")
_CARD_NAMED = re.compile(
    rf"(\b(?:card|long)\s+(?:number|no\.?|num|#)\W{{0,5}}(?:is\W{{0,3}})?)(\d(?:{_SEP}\d){{12,18}})(?!\d)",
    re.IGNORECASE,
)
# SSNs with separators anywhere; nine bare digits only right after "SSN" (else an order number).
_SSN = re.compile(r"(?<![\d\-])\d{3}([ \-])\d{2}\1\d{4}(?![\d\-])")
_SSN_BARE = re.compile(
    r"(\b(?:ssn|social\s+security(?:\s+number)?)\W{0,5})(\d{9})\b", re.IGNORECASE
)
# Words, then up to a few words of glue ("is", "on the back is", "number:"), then the value.
_GLUE = r"(?:\W{0,4}(?:(?:is|was|number|no|num|code|on|the|back|of|my|card|it'?s|=)\W{1,4}){0,5})"
# The card security code, when named as such (before or after the number).
_CVV_WORDS = (
    r"cvv2?|cvc2?|csc|cvn|card\s+security\s+(?:code|number)|security\s+(?:code|number)\s+on\s+the\s+back"
    r"|(?:3|three|4|four)[\s-]digit\s+(?:security\s+)?(?:code|number)(?:\s+on\s+the\s+back)?"
)
_CVV = re.compile(rf"(\b(?:{_CVV_WORDS}){_GLUE})(\d{{3,4}})\b", re.IGNORECASE)
_CVV_AFTER = re.compile(
    rf"\b(\d{{3,4}})(\s+(?:is|was)\s+(?:my|the)\s+(?:{_CVV_WORDS}|security\s+code)\b)",
    re.IGNORECASE,
)
# One-time and verification codes; a PIN. "code" alone only as "the/my code is ...".
_OTP_WORDS = (
    r"one[\s-]?time\s+(?:pass)?(?:code|password|pin)|otp|verification\s+code|confirmation\s+code"
    r"|security\s+code|auth(?:entication|orisation|orization)?\s+code|2fa\s+code|sms\s+code"
    r"|login\s+code|access\s+code|passcode|(?:the|my|a|this)\s+code"
)
_OTP = re.compile(rf"(\b(?:{_OTP_WORDS}){_GLUE})(\d{{4,8}})\b", re.IGNORECASE)
_OTP_AFTER = re.compile(
    r"\b(\d{4,8})(\s+(?:is|was)\s+(?:my|the)\s+(?:one[\s-]?time\s+code|otp|verification\s+code|code))\b",
    re.IGNORECASE,
)
_PIN = re.compile(rf"(\bpin(?:\s+(?:number|code))?{_GLUE})(\d{{4,6}})\b", re.IGNORECASE)
_SORT_CODE = re.compile(
    rf"(\bsort[\s-]?code{_GLUE})(\d{{2}}[\s\-.]?\d{{2}}[\s\-.]?\d{{2}})(?![\d\-])", re.IGNORECASE
)
_ACCOUNT = re.compile(
    rf"(\b(?:account|acct|a/c)(?:\s+(?:number|no\.?|num|#))?{_GLUE})(\d{{8}})(?!\d)",
    re.IGNORECASE,
)
# Whatever follows "password is" is the password, digits or not (trailing punctuation stays).
_PASSWORD = re.compile(
    r"(\b(?:password|passwd|pass\s+word|passphrase|pwd)\s*(?:(?:is|was)\b(?!n['’]t)|:|=|-)\s*[\"'“]?)"
    r"(?=\S*\w)(\S+?)([\"'”]?[.,;!?)]*(?:\s|$))",
    re.IGNORECASE,
)
# "my password is not being accepted": words that say something about a password, not it.
_NOT_A_PASSWORD = frozenset(
    "not wrong incorrect invalid correct right being too the a an no still now locked blocked "
    "expired reset changed missing required same different ok okay fine working accepted "
    "rejected case also very my your what that this it in on for to and or but when where how "
    "why which who never always definitely".split()
)
# An international number: "+" or "00", a country code, then 6-14 more digits in groups; "(0)"
# is the national trunk prefix some people keep ("+44 (0)7700 900123").
_INTERNATIONAL = re.compile(
    r"(?<![\w+])(?:\+|00)\s?[1-9]\d{0,2}(?:\s?\(0\))?(?:[\s\-.()]{0,3}\d){6,14}(?!\d)"
)
# Words after which a run of digits is a phone number when it could be one at all.
_PHONE_WORDS = re.compile(
    r"\b(?:call|phone|mobile|mob|tel|telephone|cell|landline|ring|text|whatsapp|contact|"
    r"number|reach)\b[^\d\n]{0,20}$",
    re.IGNORECASE,
)
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
# 01.02.2024, 1/2/24, 2024-02-01: a date, whatever a phone plan says about its digits.
_DATE = re.compile(r"\d{1,2}([./-])\d{1,2}\1\d{2}(?:\d{2})?|\d{4}([./-])\d{1,2}\2\d{1,2}")
# 40000.00, 1,234.56: an amount; "$", "£" or "€" right before: money too.
_AMOUNT = re.compile(r"\d[\d,]*\.\d{2}")
_MONEY_BEFORE = re.compile(r"[£€$]\s?$")
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
    return _valid_card(re.sub(r"\D", "", value))


def _iban(value: str) -> bool:
    return std_iban.is_valid(_compact(value).upper())


def _ssn(value: str) -> bool:
    return us_ssn.is_valid(_compact(value))


def _dni(value: str) -> bool:
    v = _compact(value).upper()
    return es_nie.is_valid(v) if v[0] in "XYZ" else es_dni.is_valid(v)


def _possible_phone(value: str, region: str | None) -> bool:
    digits = re.sub(r"\D", "", value)
    if value.lstrip().startswith("00"):
        value, region = "+" + digits[2:], None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def _phones(text: str) -> str:
    # The matcher is slow on long text, so it reads only short windows around digit runs.
    spans: list[tuple[int, int]] = []
    for m in _INTERNATIONAL.finditer(text):
        # Written with a country code, a number that could exist is a phone number, valid in
        # a plan or not (0044 7700 900123, reserved for drama, is still someone's format).
        if _possible_phone(m.group(0), None) and not _REFERENCE.search(
            text[max(0, m.start() - 30) : m.start()]
        ):
            spans.append((m.start(), m.end()))
    for run in _DIGIT_RUN.finditer(text):
        if any(start <= run.start() < end for start, end in spans):
            continue
        lo = max(0, run.start() - 2)
        window = text[lo : run.end() + 1]
        before = text[max(0, lo - 30) : run.start()]
        if (
            _REFERENCE.search(before)
            or _DATE.fullmatch(run.group(0))
            or _AMOUNT.fullmatch(run.group(0))
            or _MONEY_BEFORE.search(before)
        ):
            continue
        found: list[tuple[int, int]] = []
        for region in PHONE_REGIONS:
            found = [
                (lo + m.start, lo + m.end)
                for m in PhoneNumberMatcher(window, region, leniency=Leniency.VALID)
            ]
            if found:
                break
        if not found and _PHONE_WORDS.search(before) and _possible_phone(run.group(0), "GB"):
            found = [(run.start(), run.end())]
        spans.extend(found)
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


def _keep_words(placeholder: str) -> Callable[[re.Match[str]], str]:
    """Replace group 2 of a "<words> <value>" match, keeping the words (and group 3)."""

    def repl(m: re.Match[str]) -> str:
        tail = m.group(3) if m.re.groups >= 3 else ""
        return m.group(1) + placeholder + (tail or "")

    return repl


def _value_first(placeholder: str) -> Callable[[re.Match[str]], str]:
    """Replace group 1 of a "<value> is my <words>" match."""
    return lambda m: placeholder + m.group(2)


_PASSWORD_HINT = re.compile(r"pass|pwd", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace personal data in ``text`` with typed placeholders; everything else is kept.

    >>> redact("card 4111 1111 1111 1111, mail me at maya@example.com")
    'card [card], mail me at [email]'
    """
    if not text:
        return text
    has_at = "@" in text
    has_digit = any(c.isdigit() for c in text)
    password = _PASSWORD_HINT.search(text) is not None
    if not has_at and not has_digit and not password:
        return text
    if password:
        # First: a password may hold an "@" or digits that later passes would half-replace.
        keep = _keep_words(PASSWORD)
        text = _PASSWORD.sub(
            lambda m: m.group(0) if m.group(2).lower() in _NOT_A_PASSWORD else keep(m), text
        )
    if has_at:
        text = _EMAIL.sub(EMAIL, text)
    if not has_digit:
        return text
    text = _sub_prefix(_IBAN, text, IBAN, _iban)
    text = _CARD_NAMED.sub(
        lambda m: (
            m.group(1) + CARD if 13 <= len(re.sub(r"\D", "", m.group(2))) <= 19 else m.group(0)
        ),
        text,
    )
    text = _sub(_CARD, text, CARD, _card)
    text = _SORT_CODE.sub(_keep_words(SORT_CODE), text)
    text = _ACCOUNT.sub(_keep_words(ACCOUNT), text)
    text = _CVV.sub(_keep_words(CVV), text)
    text = _CVV_AFTER.sub(_value_first(CVV), text)
    text = _OTP.sub(_keep_words(CODE), text)
    text = _OTP_AFTER.sub(_value_first(CODE), text)
    text = _PIN.sub(_keep_words(PIN), text)
    text = _sub(_SSN, text, ID, _ssn)
    text = _SSN_BARE.sub(
        lambda m: m.group(1) + ID if us_ssn.is_valid(m.group(2)) else m.group(0), text
    )
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


__all__ = [
    "ACCOUNT",
    "CARD",
    "CODE",
    "CVV",
    "EMAIL",
    "IBAN",
    "ID",
    "PASSWORD",
    "PHONE",
    "PHONE_REGIONS",
    "PIN",
    "SORT_CODE",
    "contains_pii",
    "redact",
]
