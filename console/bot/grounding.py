"""Is a reply grounded in the articles it was written from? A deterministic check, no model.

A reply may reach a customer only when (DESIGN.md section 9):

- it cites articles it was given (an id it was not given is an invention), and must cite one
  whenever it states anything checkable or the knowledge base answers the question;
- every checkable claim in it appears in the articles it cites:

  ============  ==========================================================================
  amounts       ``£3,000``, ``3000 pounds``, ``50p``, ``€0.50``, ``1%``: same currency, value
  numbers       any other number (``3 payments``, ``age 18``, ``24/7``, "three"), unless the
                customer wrote it
  time spans    ``2 hours``, ``3-5 working days``, "a week": value and unit; "working days"
                only where the article says so; "instantly", "same day", "next day"
  fees          "free", "no fee", "costs nothing" need a free thing in the article; "fee",
                "charge" need the article to speak of fees or prices
  limits        "no limit", "unlimited", "as often as you like"
  promises      refund, reimburse, compensation, waive, guarantee, cashback
  products      a fixed list (Apple Pay, PayPal, iPhone, overdraft, SWIFT...), "<Name>
                plan/account", and any capitalised name inside a sentence
  app steps     what follows tap / press / open / go to / select...: every word of it, and
                every part of a path ``Account → Limits``
  ============  ==========================================================================

- and it does not swap a product the customer named for its sibling (steps for Apple Pay to
  a question about Google Pay).

What the check cannot read (a plain "yes, you can") is left to the citation and the model's
instructions. Articles are read once and cached; a check costs well under a millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from console.kb.words import stem

# -- numbers -------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
}
_NUM = r"\d[\d,]*(?:\.\d+)?"
_WORD_NUM = "|".join(_NUMBER_WORDS)
_SYMBOLS = {"£": "GBP", "€": "EUR", "$": "USD"}
_CURRENCY_WORDS = {
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
    "gbp": "GBP",
    "euro": "EUR",
    "euros": "EUR",
    "eur": "EUR",
    "dollar": "USD",
    "dollars": "USD",
    "usd": "USD",
}
_MONEY_SYMBOL = re.compile(rf"([£€$])\s?({_NUM})\s?(k|m|bn)?\b", re.IGNORECASE)
_MONEY_WORD = re.compile(
    rf"\b({_NUM})\s?(k\b)?\s?(pounds?|quid|gbp|euros?|eur|dollars?|usd|pence|p)\b", re.IGNORECASE
)
_PERCENT = re.compile(rf"\b({_NUM})\s?(?:%|per\s?cent\b)", re.IGNORECASE)
_UNITS = {
    "second": "second",
    "sec": "second",
    "minute": "minute",
    "min": "minute",
    "hour": "hour",
    "hr": "hour",
    "day": "day",
    "week": "week",
    "month": "month",
    "year": "year",
}
# "a day" after an amount is a rate ("£500 a day"), not a time span: only number-led spans count,
# and "a/an" only after words that introduce a wait ("within a day", "takes a week").
_SPAN = re.compile(
    rf"\b(?P<a>{_NUM}|{_WORD_NUM}|an?|one)(?:\s?(?:-|–|to)\s?(?P<b>{_NUM}|{_WORD_NUM}))?"
    r"\s+(?P<qual>working\s+|business\s+|banking\s+)?"
    r"(?P<unit>seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)\b",
    re.IGNORECASE,
)
_WAIT_INTRO = re.compile(
    r"\b(?:within|in|for|after|takes?|about|around|over|under|than|least|most|up\s+to)\s+$",
    re.IGNORECASE,
)
# "1) Open the app", "2. Tap Freeze": the numbering of steps says nothing.
_ENUMERATOR = re.compile(r"(?:^|(?<=[\s;(]))\d{1,2}[.)](?=\s)", re.MULTILINE)
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_LETTERS = re.compile(r"[a-zA-Z]+")
# A product name with a digit in it is a name, not a number.
_PAY_IN_3 = re.compile(r"\bpay[\s\-]*in[\s\-]*(?:3|three)\b", re.IGNORECASE)

# -- words that make a claim ----------------------------------------------------------------

_QUICK = {
    "instant": re.compile(
        r"\b(?:instant(?:ly)?|immediate(?:ly)?|straight\s+away|right\s+away|at\s+once|"
        r"(?:with)?in\s+seconds|real[\s-]time)\b",
        re.IGNORECASE,
    ),
    "same day": re.compile(r"\bsame[\s-]day\b", re.IGNORECASE),
    "next day": re.compile(
        r"\b(?:next\s+(?:working\s+|business\s+)?day|overnight)\b", re.IGNORECASE
    ),
}
_FREE = re.compile(
    r"(?<!feel\s)\bfree\b(?!\s+to\b)|\bno\s+(?:extra\s+|additional\s+|hidden\s+)?(?:fees?|charges?|cost)\b"
    r"|\bcosts?\s+nothing\b|\bat\s+no\s+(?:extra\s+)?cost\b|\bwithout\s+(?:any\s+)?(?:fees?|charges?)\b"
    r"|\bfee[\s-]free\b|\b(?:don'?t|do\s+not|won'?t|will\s+not)\s+(?:be\s+)?charge",
    re.IGNORECASE,
)
_FREE_IN_ARTICLE = re.compile(
    r"\bfree\b|\bno\s+(?:fee|charge|cost|mark-up|markup)|\bnothing\b|\bnone\b", re.IGNORECASE
)
_FEE = re.compile(r"\b(?:fees?|charges?|surcharges?|commission)\b", re.IGNORECASE)
_FEE_IN_ARTICLE = re.compile(r"\b(?:fees?|charge[sd]?|costs?|free|price[sd]?)\b|[£€$%]", re.I)
_NO_LIMIT = re.compile(
    r"\bno\s+(?:upper\s+|daily\s+|monthly\s+|per[\s-]payment\s+)?(?:limit|maximum|cap)\b|\bunlimited\b"
    r"|\bas\s+(?:much|many|often)\s+as\s+you\s+(?:like|want|need)\b",
    re.IGNORECASE,
)
_NO_LIMIT_IN_ARTICLE = re.compile(
    r"\bno\s+(?:[\w-]+\s+)?(?:limit|maximum|cap)\b|\bunlimited\b|\bas\s+(?:much|many|often)\s+as\b",
    re.IGNORECASE,
)
_PROMISES = re.compile(
    r"\b(refund|reimburs|compensat|waive|goodwill|cashback|guarantee|money\s+back)\w*",
    re.IGNORECASE,
)

# Products and services by name: the reply may name one only if a cited article does.
PRODUCTS: dict[str, str] = {
    "Apple Pay": r"apple\s*pay",
    "Google Pay": r"google\s*pay|gpay",
    "Samsung Pay": r"samsung\s*pay",
    "Garmin Pay": r"garmin\s*pay",
    "Fitbit Pay": r"fitbit\s*pay",
    "Apple Wallet": r"apple\s+wallet",
    "Google Wallet": r"google\s+wallet",
    "Apple Watch": r"apple\s+watch",
    "iPhone": r"iphones?",
    "iPad": r"ipads?",
    "iOS": r"ios",
    "Android": r"android",
    "Face ID": r"face\s*id",
    "Touch ID": r"touch\s*id",
    "PayPal": r"pay\s*pal",
    "Klarna": r"klarna",
    "Clearpay": r"clearpay",
    "Afterpay": r"afterpay",
    "Venmo": r"venmo",
    "Zelle": r"zelle",
    "Cash App": r"cash\s+app",
    "Revolut": r"revolut",
    "Monzo": r"monzo",
    "Starling": r"starling",
    "Wise": r"wise",
    "Western Union": r"western\s+union",
    "MoneyGram": r"money\s*gram",
    "Bitcoin": r"bitcoin",
    "crypto": r"crypto(?:currenc(?:y|ies)|s)?",
    "Visa": r"visa",
    "Mastercard": r"master\s*card",
    "Maestro": r"maestro",
    "American Express": r"american\s+express|amex",
    "Post Office": r"post\s+office",
    "PayPoint": r"paypoint",
    "Faster Payments": r"faster\s+payments?",
    "SEPA": r"sepa",
    "SWIFT": r"swift",
    "BACS": r"bacs",
    "CHAPS": r"chaps",
    "Open Banking": r"open\s+banking",
    "Pay-in-3": r"pay[\s\-]*in[\s\-]*(?:3|three)",
    "Plus plan": r"plus(?:\s+(?:plan|account|subscription|customers?|members?))",
    "Premium": r"premium",
    "Metal": r"metal(?:\s+card)?",
    "overdraft": r"overdrafts?",
    "loan": r"(?:personal\s+)?loans?",
    "ISA": r"isas?",
    "mortgage": r"mortgages?",
    "insurance": r"insurance",
    "cheque": r"cheques?|checks?\s+deposit",
    "credit card": r"credit\s+cards?",
    "savings account": r"savings\s+accounts?",
    "interest": r"interest\s+(?:rate|on)",
}
_PRODUCT_RES = {name: re.compile(rf"\b(?:{rx})\b", re.IGNORECASE) for name, rx in PRODUCTS.items()}
# A substring every mention contains: a product's pattern runs only where its key occurs.
_KEYS: dict[str, tuple[str, ...]] = {
    "Google Pay": ("google", "gpay"),
    "Apple Wallet": ("apple",),
    "Apple Watch": ("apple",),
    "PayPal": ("pal",),
    "MoneyGram": ("gram",),
    "American Express": ("american", "amex"),
    "Pay-in-3": ("in",),
    "Plus plan": ("plus",),
    "loan": ("loan",),
    "cheque": ("cheque", "check"),
    "iPhone": ("iphone",),
    "iPad": ("ipad",),
    "overdraft": ("overdraft",),
    "ISA": ("isa",),
    "mortgage": ("mortgage",),
}
_PRODUCT_KEYS = {
    name: _KEYS.get(name, (re.split(r"[^a-z]", rx.lower(), maxsplit=1)[0] or name.lower(),))
    for name, rx in PRODUCTS.items()
}
# How an article names what a reply calls "the Plus plan": the plan's own name is enough.
_IN_ARTICLE = {"Plus plan": re.compile(r"\bplus\b", re.IGNORECASE)}
# Siblings a reply must not swap: the customer named one, the reply speaks only of another.
FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"Apple Pay", "Google Pay", "Samsung Pay", "Garmin Pay", "Fitbit Pay"}),
    frozenset({"iPhone", "iOS", "Android"}),
    frozenset({"SEPA", "SWIFT", "Faster Payments"}),
)
_PLAN_NAME = re.compile(r"\b([A-Z][a-z]+)\s+(?:plan|tier|subscription|membership|account)s?\b")
_NOT_NAMES = frozenset(
    "your the this that a an our my each every any one new old main same other their his her "
    "personal joint current standard".split()
)
# Capitalised words that are not names: pronouns, interjections, the company itself.
_COMMON_CAPS = frozenset(
    "i i'm i'll i've i'd ok okay hi hello hey thanks thank sorry yes no please pennant pay "
    "dear team".split()
)
_CAP_WORD = re.compile(r"(?<![\w'’])([A-Z][\w'’\-]*[a-zA-Z])")
_SENTENCE_START = re.compile(r"(?:[.!?:;\n]\s*|[\"'“(]\s*|\d[.)]\s+|[-*•]\s+)$")

# -- app steps -------------------------------------------------------------------------------

_STEP = re.compile(
    r"\b(?:tap|press|click|select|choose|open|go\s+(?:in)?to|head\s+(?:over\s+)?to|navigate\s+to|"
    r"swipe|toggle|switch\s+(?:on|off)|turn\s+(?:on|off)|enable|disable|scroll\s+(?:down\s+)?to|"
    r"visit|log\s*in\s+to|sign\s+in\s+to)\b\s+"
    # Up to the clause's end or its next "and"/"then", so "open X and tap Y" reads both.
    r"(?P<target>(?:(?!\b(?:and|then|or)\b)[^.;,!?\n()]){1,60})",
    re.IGNORECASE,
)
_ARROW = re.compile(r"\s*(?:→|->|>|»)\s*")
_CLAUSE_END = re.compile(r"[.;,!?\n()]")
_STEP_END = frozenset(
    "and then to if so which where when while you it that for with from so or but until "
    "before after again".split()
)
_STEP_FILLER = frozenset(
    "the a an your my our on in at of this that it its there here now both all button buttons "
    "tab tabs menu screen page icon option options section link app apps top bottom "
    "under into by about how what out up down more any some them they we i me us is are be "
    "can will just also new".split()
)
_WORD = re.compile(r"[^\W\d_][\w'’\-]*")
_CUSTOMER_CHARS = 4000  # the customer's numbers are looked for in this much of what they wrote


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :func:`check`.

    :param problems: one short line each, for agents ("amount £2,000 is not in KB-015")
    :param cited: the cited ids that were among the articles given
    :param invented: cited ids that were not given
    """

    problems: tuple[str, ...]
    cited: tuple[str, ...]
    invented: tuple[str, ...] = ()

    @property
    def grounded(self) -> bool:
        return not self.problems

    def summary(self, limit: int = 2) -> str:
        """The first ``limit`` problems in one line (the rest counted)."""
        shown = "; ".join(self.problems[:limit])
        rest = len(self.problems) - limit
        return shown + (f" (+{rest} more)" if rest > 0 else "")


@dataclass(frozen=True, slots=True)
class _Facts:
    """What one text states, normalised for comparison."""

    money: frozenset[tuple[str, float]]
    percents: frozenset[float]
    numbers: frozenset[float]
    spans: frozenset[_Span]
    points: frozenset[tuple[float, str, bool]]  # every end of every span: (value, unit, working)
    quick: frozenset[str]
    stems: frozenset[str]
    lower: str


def _value(raw: str) -> float | None:
    raw = raw.lower()
    if raw in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[raw])
    if raw in ("a", "an", "one"):
        return 1.0
    try:
        return float(raw.replace(",", ""))
    except ValueError:
        return None


def _scaled(value: float, suffix: str | None) -> float:
    factor = {"k": 1e3, "m": 1e6, "bn": 1e9}.get((suffix or "").lower(), 1.0)
    return value * factor


def _money(text: str) -> list[tuple[str, tuple[str, float]]]:
    out: list[tuple[str, tuple[str, float]]] = []
    for m in _MONEY_SYMBOL.finditer(text):
        value = _value(m.group(2))
        if value is not None:
            out.append((m.group(0).strip(), (_SYMBOLS[m.group(1)], _scaled(value, m.group(3)))))
    for m in _MONEY_WORD.finditer(text):
        value = _value(m.group(1))
        word = m.group(3).lower()
        if value is None:
            continue
        if word in ("p", "pence"):
            out.append((m.group(0).strip(), ("GBP", value / 100)))
        else:
            out.append((m.group(0).strip(), (_CURRENCY_WORDS[word], _scaled(value, m.group(2)))))
    return out


_Span = tuple[float, float, str, bool]  # (from, to, unit, working days); from == to for one value


def _spans(text: str) -> list[tuple[str, _Span]]:
    out: list[tuple[str, _Span]] = []
    for m in _SPAN.finditer(text):
        first = m.group("a").lower()
        if first in ("a", "an") and not _WAIT_INTRO.search(
            text[max(0, m.start() - 12) : m.start()]
        ):
            continue  # "£500 a day" is a rate
        unit = m.group("unit").lower().rstrip("s")
        unit = _UNITS.get(unit, unit)
        lo = _value(first)
        hi = _value(m.group("b")) if m.group("b") else lo
        if lo is not None and hi is not None:
            out.append((m.group(0), (lo, hi, unit, bool(m.group("qual")))))
    return out


def _bare_numbers(text: str) -> list[tuple[str, float]]:
    text = _ENUMERATOR.sub(" ", _PAY_IN_3.sub(" ", text))
    out: list[tuple[str, float]] = []
    for m in _DIGITS.finditer(text):
        value = _value(m.group(0).rstrip(".,"))
        if value is not None:
            out.append((m.group(0), value))
    for word in _LETTERS.findall(text):
        value = _NUMBER_WORDS.get(word.lower())
        if value is not None:
            out.append((word, float(value)))
    return out


@lru_cache(maxsize=4096)
def facts_of(text: str) -> _Facts:
    """What ``text`` states (amounts, numbers, spans, words), cached: articles repeat."""
    spans = {span for _, span in _spans(text)}
    points = {(v, unit, working) for lo, hi, unit, working in spans for v in (lo, hi)}
    numbers = {v for _, v in _bare_numbers(text)}
    money = {key for _, key in _money(text)}
    numbers |= {v for _, v in money}
    percents = {v for m in _PERCENT.finditer(text) if (v := _value(m.group(1))) is not None}
    numbers |= percents
    quick = {name for name, rx in _QUICK.items() if rx.search(text)}
    return _Facts(
        frozenset(money),
        frozenset(percents),
        frozenset(numbers),
        frozenset(spans),
        frozenset(points),
        frozenset(quick),
        frozenset(stem(w.lower().replace("'", "").replace("’", "")) for w in _WORD.findall(text)),
        text.lower(),
    )


class _Lazy:
    """The customer's text, read only if needed (a long complaint costs more than a reply)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._words: frozenset[str] | None = None

    def facts(self) -> _Facts | None:
        return facts_of(self.text[:_CUSTOMER_CHARS]) if self.text else None

    def words(self) -> frozenset[str]:
        if self._words is None:
            self._words = frozenset(w.lower() for w in _WORD.findall(self.text))
        return self._words


def _has_span(facts: _Facts, span: _Span) -> bool:
    """The article states this span: a range as a range; one value alone or as a range's end.

    "3 days" is found in "3 working days" (less precise, not invented); "3 working days" is
    not found in "3 days", and "5-7 days" is not found in "3 to 5 days ... 7 days".
    """
    lo, hi, unit, working = span
    kinds = (True,) if working else (False, True)
    if lo == hi:
        return any((lo, unit, w) in facts.points for w in kinds)
    return any((lo, hi, unit, w) in facts.spans for w in kinds)


def _names(text: str) -> list[str]:
    """Capitalised words inside a sentence (a sentence's first word says nothing)."""
    out = []
    for m in _CAP_WORD.finditer(text):
        word = m.group(1)
        if word.lower() in _COMMON_CAPS:
            continue
        if _SENTENCE_START.search(text[max(0, m.start() - 4) : m.start()]) or m.start() == 0:
            continue
        out.append(word)
    return out


def _step_words(target: str) -> list[str]:
    words: list[str] = []
    for raw in _WORD.findall(target):
        word = raw.lower().strip("'’")
        if word in _STEP_END:
            break
        if word in _STEP_FILLER or word in _NUMBER_WORDS:
            continue
        words.append(raw)
        if len(words) == 4:
            break
    return words


def products_in(text: str) -> set[str]:
    """The names of :data:`PRODUCTS` that ``text`` mentions."""
    lower = text.lower()
    return {
        name
        for name, keys in _PRODUCT_KEYS.items()
        if any(k in lower for k in keys) and _PRODUCT_RES[name].search(text)
    }


def check(
    reply: str,
    *,
    articles: Mapping[str, str],
    cited: Sequence[str],
    customer_text: str = "",
    names: Iterable[str] = (),
    needs_citation: bool = False,
) -> Verdict:
    """Check ``reply`` against the articles it was written from.

    :param articles: the articles the reply was given, id -> text (title, summary, facts, steps)
    :param cited: the ids the reply says it used
    :param customer_text: what the customer wrote: numbers and names from it are theirs
    :param names: other words that may appear capitalised (the customer's first name)
    :param needs_citation: the knowledge base answers the question, so the reply must cite
    """
    by_upper = {k.upper(): k for k in articles}
    valid: list[str] = []
    invented: list[str] = []
    for raw in cited:
        key = by_upper.get(str(raw).strip().upper())
        if key is None:
            invented.append(str(raw))
        elif key not in valid:
            valid.append(key)
    problems: list[str] = [f"cites {i}, which it was not given" for i in invented]
    source = "\n".join(articles[k] for k in valid)
    where = ", ".join(valid) or "any cited article"
    have = facts_of(source)
    # What the customer wrote is read only when a claim is missing from the articles.
    theirs = _Lazy(customer_text)
    own_names = {n.lower() for n in names if n}
    claims = 0

    def unfounded(what: str) -> None:
        problems.append(f"{what} is not in {where}")

    money, spans_found = _money(reply), _spans(reply)
    percents = [(m.group(0).strip(), _value(m.group(1))) for m in _PERCENT.finditer(reply)]
    for phrase, amount in money:
        claims += 1
        if amount not in have.money and not ((f := theirs.facts()) and amount in f.money):
            unfounded(f"amount {phrase}")
    for phrase, value in percents:
        claims += 1
        if value is not None and value not in have.percents:
            unfounded(f"rate {phrase}")
    for phrase, span in spans_found:
        claims += 1
        if not _has_span(have, span) and not ((f := theirs.facts()) and _has_span(f, span)):
            unfounded(f"time span {phrase!r}")
    # Numbers already checked as amounts or spans are not reported twice.
    checked = {v for _, (_, v) in money} | {v for _, s in spans_found for v in s[:2]}
    checked |= {v for _, v in percents if v is not None}
    for phrase, value in _bare_numbers(reply):
        if value in checked:
            continue
        claims += 1
        checked.add(value)
        if value not in have.numbers and not ((f := theirs.facts()) and value in f.numbers):
            unfounded(f"number {phrase}")
    for name, rx in _QUICK.items():
        if rx.search(reply):
            claims += 1
            if name not in have.quick:
                unfounded(f"timing {name!r}")
    if _FREE.search(reply):
        claims += 1
        if not (_FREE_IN_ARTICLE.search(source) or _FREE.search(source)):
            unfounded("a free or no-fee claim")
    elif _FEE.search(reply):
        claims += 1
        if not _FEE_IN_ARTICLE.search(source):
            unfounded("a fee")
    if _NO_LIMIT.search(reply):
        claims += 1
        if not _NO_LIMIT_IN_ARTICLE.search(source):
            unfounded("a no-limit claim")
    for m in _PROMISES.finditer(reply):
        claims += 1
        if m.group(1).lower() not in have.lower:
            unfounded(f"a promise ({m.group(0)})")
            break

    named = products_in(reply)
    for name in sorted(named):
        claims += 1
        if not _IN_ARTICLE.get(name, _PRODUCT_RES[name]).search(source):
            unfounded(f"the name {name}")
    asked = products_in(customer_text)
    for family in FAMILIES:
        wanted, said = asked & family, named & family
        if wanted and said and not wanted & said:
            problems.append(
                f"answers about {', '.join(sorted(said))}; the customer asked about "
                f"{', '.join(sorted(wanted))}"
            )
    product_words = {w.lower() for n in named for w in _WORD.findall(n)}
    seen: set[str] = set()
    for m in _PLAN_NAME.finditer(reply):
        word = m.group(1)
        if word.lower() in _NOT_NAMES or word.lower() in seen or word.lower() in product_words:
            continue
        seen.add(word.lower())
        claims += 1
        if word.lower() not in have.lower and word.lower() not in own_names:
            unfounded(f"the name {m.group(0)!r}")
    for word in _names(reply):
        low = word.lower()
        # A shop or a place the customer named may be named back; a product they asked about
        # may not (that is checked above).
        if low in seen or low in product_words or low in own_names or low in theirs.words():
            continue
        seen.add(low)
        claims += 1
        if low not in have.lower and stem(low) not in have.stems:
            unfounded(f"the name {word!r}")

    steps_checked: set[str] = set()
    targets = [m.group("target") for m in _STEP.finditer(reply)]
    for clause in _CLAUSE_END.split(reply):
        first, *rest = _ARROW.split(clause)
        if rest:
            # The first part runs back into the sentence ("raise it under Account"): its last words.
            targets += [" ".join(first.split()[-2:]), *rest]
    for target in targets:
        for word in _step_words(target):
            low = word.lower().strip("'’")
            if low in steps_checked:
                continue
            steps_checked.add(low)
            claims += 1
            if stem(low.replace("'", "").replace("’", "")) not in have.stems:
                problems.append(f"step {target.strip()!r} is not in {where}")
                break

    if not valid and (claims or needs_citation):
        problems.insert(0, "cites none of the articles it was given")
    return Verdict(tuple(dict.fromkeys(problems)), tuple(valid), tuple(invented))


__all__ = ["FAMILIES", "PRODUCTS", "Verdict", "check", "facts_of", "products_in"]
