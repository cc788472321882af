"""Conversational intents the bot recognises before it searches the knowledge base.

Precompiled patterns only: this runs on every customer message on the hub, so it must cost
microseconds. The order of :func:`detect` is the order of precedence: a request for a person
wins over everything, an injection attempt is removed before anything else is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cached_property

from console.untrusted import for_matching

# Asking for a person. "Not a bot" / "real person" / "speak to someone" / "agent please".
_HUMAN = re.compile(
    r"\b(?:"
    r"(?:talk|speak|chat|get through)\s+(?:to|with)\s+(?:a\s+|an\s+|some\s+|your\s+|real\s+|actual\s+)*"
    r"(?:human|person|people|agent|advisor|adviser|someone|somebody|representative|rep|manager|staff|operator)"
    r"|real\s+(?:human|person|people)|actual\s+(?:human|person)|human\s+being"
    r"|(?:human|agent|person|operator|representative)\s*(?:please|pls\b|now\s*[.!]*$)"
    r"|(?:not|stop)\s+(?:a|the|this|talking to (?:a|the))\s+(?:bot|robot|machine)"
    r"|(?:connect|transfer|put)\s+me\s+(?:to|through|with)"
    r"|customer\s+(?:service|support)\s+(?:agent|rep|representative|person)"
    r"|(?:want|need)\s+(?:a|an)\s+(?:human|person|agent)"
    r")",
    re.IGNORECASE,
)

# Attempts to change the bot's instructions or read its internals. Matched per sentence,
# and the matching sentences are dropped before the rest of the message is read.
_INJECTION = re.compile(
    r"(?:"
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}\b(?:instructions?|rules|prompts?|guidelines|"
    r"programming|policy|policies|restrictions|guardrails|system)"
    r"|\byou\s+are\s+(?:now|no\s+longer)\b|\bfrom\s+now\s+on\b[^.!?\n]{0,20}\byou\b"
    r"|\b(?:act|behave|respond)\s+as\s+(?:if|an?|my|the)\b|\bpretend\s+(?:to\s+be|you(?:'re|\s+are)?)\b"
    r"|\broleplay\b|\bjailbreak|\bdan\s+mode\b|\bdeveloper\s+mode\b|\badmin(?:istrator)?\s+mode\b"
    r"|\b(?:system|hidden|initial|original)\s+(?:prompt|message|instructions?)\b"
    r"|\b(?:reveal|show|print|repeat|output|tell\s+me|give\s+me|what\s+(?:are|is))\s+(?:me\s+)?(?:your|the)\s+"
    r"(?:system\s+|internal\s+|secret\s+|hidden\s+)?(?:prompt|instructions?|rules|policy|policies|configuration|"
    r"escalation\s+(?:rules|policy|threshold)s?)\b"
    r"|\bnew\s+instructions?\b"
    r"|\bhow\s+do\s+you\s+decide\s+(?:when|who|whether)\b"
    r")",
    re.IGNORECASE,
)

_GREETING = re.compile(
    r"^\W*(?:hi+|hello+|hey+|hiya|howdy|yo|good\s+(?:morning|afternoon|evening|day)|greetings|"
    r"hallo|hola|bonjour|morning|evening)\b",
    re.IGNORECASE,
)
_THANKS = re.compile(
    r"\b(?:thanks?|thank\s*(?:you|u)|thx|ty|cheers|ta|much\s+appreciated|appreciate\s+it|"
    r"that(?:'s|\s+is)\s+(?:all|it|everything|great|perfect|helpful|brilliant)|all\s+(?:sorted|good|done)|"
    r"bye+|goodbye|good\s*bye|see\s+ya|that\s+helped|problem\s+solved|sorted|have\s+a\s+(?:good|nice)\s+(?:day|one))\b",
    re.IGNORECASE,
)
_CLOSING_NO = re.compile(
    r"^\W*(?:no+|nope|nah|no\s+thanks?|no\s+thank\s+you|nothing(?:\s+else)?|that(?:'s|\s+is)\s+(?:all|it)|"
    r"i(?:'m|\s+am)\s+(?:good|fine|ok|okay|all\s+set))\W*$",
    re.IGNORECASE,
)
_ANYTHING_ELSE = re.compile(r"anything\s+else|something\s+else|else\s+i\s+can", re.IGNORECASE)
_VAGUE = re.compile(
    r"\b(?:doesn'?t|does\s+not|isn'?t|is\s+not|won'?t|not|never|can'?t|cannot)\s+work(?:ing|s)?\b|\bbroken\b|"
    r"\bproblem|\bissue|\berror\b|\bwrong\b|\bstuck\b|\bhelp\b|\bquestion\b|\bconfused\b|\bnot\s+sure\b",
    re.IGNORECASE,
)
_HOW_TO = re.compile(
    r"\b(?:how\s+(?:do|can|should|would|to)|where\s+(?:do|can|is)|what\s+do\s+i\s+do|steps?)\b",
    re.IGNORECASE,
)
_HOW_LONG = re.compile(
    r"\b(?:how\s+long|when\s+will|how\s+soon|how\s+many\s+days|still\s+(?:not|waiting))\b",
    re.IGNORECASE,
)
_HOW_MUCH = re.compile(
    r"\b(?:how\s+much|cost|costs|fee|fees|charge|charges|price|pricing|free)\b", re.IGNORECASE
)
# Fake role tags ("</system>", "<assistant>"): removed themselves, and they end a sentence.
_ROLE_TAG = re.compile(
    r"</?\s*(?:system|assistant|user|instructions?|prompt|im_start|im_end|customer_message|customer_name|tool|function)\s*/?>|<\|[a-z_]+\|>",
    re.IGNORECASE,
)
_CONFUSED = re.compile(
    r"\b(?:(?:don'?t|do\s+not|didn'?t|did\s+not)\s+(?:follow|understand|get\s+(?:it|that|you))|what\s+do\s+you\s+mean|"
    r"(?:makes|made)\s+no\s+sense|doesn'?t\s+make\s+(?:any\s+)?sense|too\s+complicated|not\s+clear|unclear|lost\s+me|"
    r"try\s+again|say\s+(?:that|it)\s+again|explain\s+(?:it\s+|that\s+)?(?:again|simply|more\s+simply|better)|simpler|"
    r"plain\s+english)\b",
    re.IGNORECASE,
)
_ROLE_CLAIM = re.compile(
    r"\s*(?:you\s+are|you'?re|your\s+(?:new\s+)?role|i\s+am\s+(?:your|the|an?)\s+(?:admin|developer|owner|creator))\b",
    re.IGNORECASE,
)
# The last answer missed: "that's not what I asked", "I already did that and it didn't work".
_MISSED = re.compile(
    r"\b(?:not\s+what\s+i\s+(?:asked|meant|need(?:ed)?)|that'?s\s+not\s+(?:it|right|my\s+question)|"
    r"(?:doesn'?t|does\s+not|didn'?t|did\s+not)\s+help|not\s+(?:helpful|useful)|wrong\s+answer|"
    r"you'?re\s+not\s+listening|already\s+(?:did|done|tried)|(?:still\s+)?(?:doesn'?t|didn'?t|did\s+not)\s+work)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


# Words one of the patterns above needs. Scanning for plain substrings is far cheaper than
# running an alternation at every position of a long complaint, so most texts skip the regex.
_HUMAN_HINTS = (
    "human",
    "person",
    "people",
    "agent",
    "advis",
    "someone",
    "somebody",
    "represent",
    "manager",
    "staff",
    "operator",
    "bot",
    "machine",
    "connect",
    "transfer me",
    "put me",
)
_INJECTION_HINTS = (
    "ignore",
    "disregard",
    "forget",
    "override",
    "bypass",
    "you are",
    "you're",
    "from now on",
    "act as",
    "behave as",
    "respond as",
    "pretend",
    "roleplay",
    "jailbreak",
    "dan mode",
    " mode",
    "prompt",
    "instruction",
    "rules",
    "polic",
    "configuration",
    "escalation",
    "how do you decide",
    "system message",
)


# "Do I need to speak to someone to close my account?" asks how, not for a person; "I asked to
# speak to a manager" tells a story about another company.
_NOT_A_REQUEST = re.compile(
    r"(?:\b(?:do|did|does|would|will)\s+(?:i|we|you)\s+(?:have|need)\s+to|"
    r"\b(?:i|we|she|he|they)\s+(?:asked|tried|wanted|requested|had)\s+to|\bwithout|\bno\s+need\s+to)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Patterns:
    human: re.Pattern[str]
    not_a_request: re.Pattern[str]
    greeting: re.Pattern[str]
    thanks: re.Pattern[str]
    vague: re.Pattern[str]
    how_to: re.Pattern[str]
    how_long: re.Pattern[str]
    how_much: re.Pattern[str]
    confused: re.Pattern[str]
    missed: re.Pattern[str]


_IGNORING_CASE = _Patterns(
    _HUMAN,
    _NOT_A_REQUEST,
    _GREETING,
    _THANKS,
    _VAGUE,
    _HOW_TO,
    _HOW_LONG,
    _HOW_MUCH,
    _CONFUSED,
    _MISSED,
)
# The same patterns without IGNORECASE, for lower-cased text: two to three times cheaper, and
# the same matches, except for the letters IGNORECASE equates with ASCII ones that lower()
# leaves alone or lengthens (dotless i, long s, dotted capital I, the Kelvin sign): a text
# with one of those is read the IGNORECASE way.
_LOWER_CASE = _Patterns(
    *(re.compile(getattr(_IGNORING_CASE, field.name).pattern) for field in fields(_Patterns))
)
_CASE_SPECIAL = re.compile("[\u0131\u017f\u0130\u212a]")


class Cues:
    """What a customer message is asking for, read before any retrieval.

    ``human``, ``injection``, ``cleaned`` and ``question`` are read at once; the other cues
    when first asked for (most messages need a few of them), then remembered.
    """

    def __init__(
        self, human: bool, injection: bool, cleaned: str, read: str, patterns: _Patterns
    ) -> None:
        self.human = human
        self.injection = injection
        self.cleaned = cleaned  # the message without its injection sentences
        self.question = "?" in cleaned
        self._read = read  # ``cleaned``, lower-cased for :data:`_LOWER_CASE`
        self._patterns = patterns
        # Thanks, goodbyes and the actual question open or close a message; in a long one the
        # middle is the story. "It doesn't work" and "I don't follow" matter only in short ones.
        self._short = len(cleaned) <= 400

    @cached_property
    def _edges(self) -> str:
        read = self._read
        return read if self._short else f"{read[:200]} {read[-200:]}"

    @cached_property
    def greeting(self) -> bool:
        return bool(self._patterns.greeting.search(self._read))

    @cached_property
    def thanks(self) -> bool:
        return bool(self._patterns.thanks.search(self._edges))

    @cached_property
    def vague(self) -> bool:
        return self._short and bool(self._patterns.vague.search(self._read))

    @cached_property
    def how_to(self) -> bool:
        return bool(self._patterns.how_to.search(self._edges))

    @cached_property
    def how_long(self) -> bool:
        return bool(self._patterns.how_long.search(self._edges))

    @cached_property
    def how_much(self) -> bool:
        return bool(self._patterns.how_much.search(self._edges))

    @cached_property
    def confused(self) -> bool:
        return self._short and bool(self._patterns.confused.search(self._read))

    @cached_property
    def missed(self) -> bool:
        return self._short and bool(self._patterns.missed.search(self._read))

    def __repr__(self) -> str:
        names = "human injection cleaned greeting thanks vague how_to how_long how_much question"
        names += " confused missed"
        return f"Cues({', '.join(f'{n}={getattr(self, n)!r}' for n in names.split())})"


def _asks_for_person(text: str, lowered: str, patterns: _Patterns = _IGNORING_CASE) -> bool:
    """Whether ``text`` asks for a person; ``text`` is already lower case for :data:`_LOWER_CASE`."""
    if not _has_any(lowered, _HUMAN_HINTS):
        return False
    for match in patterns.human.finditer(text):
        if not patterns.not_a_request.search(text[max(0, match.start() - 40) : match.start()]):
            return True
    return False


def _has_any(lowered: str, hints: tuple[str, ...]) -> bool:
    for hint in hints:  # a plain loop: no generator to resume for each hint
        if hint in lowered:
            return True
    return False


def strip_injection(text: str, lowered: str | None = None) -> tuple[str, bool]:
    """The text without sentences that try to instruct the bot, and whether any were found.

    :param lowered: ``text.lower()``, when the caller has it already
    """
    original = text
    if not text.isascii():
        # Read as it shows: an invisible character inside a word ("ig\u00adnore previous
        # instructions") or fullwidth letters hid the attempt from the patterns, not from a model.
        text = for_matching(text)
        lowered = None
    tagged = "<" in text and bool(_ROLE_TAG.search(text))
    if not tagged and not _has_any(text.lower() if lowered is None else lowered, _INJECTION_HINTS):
        return original, False
    if tagged:
        text = _ROLE_TAG.sub("\n", text)
    if not _INJECTION.search(text) and not tagged:
        return original, False
    # Once a message tries to instruct the bot, its "you are ..." sentences are part of the attempt.
    kept = [
        s for s in _SENTENCE.findall(text) if not _INJECTION.search(s) and not _ROLE_CLAIM.match(s)
    ]
    return " ".join(s.strip() for s in kept if s.strip()), True


def detect(text: str) -> Cues:
    """Read the cues of one customer message (any text; at most its first 2,000 characters)."""
    text = for_matching(text[:2000])  # as it reads: no invisible characters inside words
    lowered = text.lower()
    cleaned, injection = strip_injection(text, lowered)
    if _CASE_SPECIAL.search(text) is None:
        patterns, read, read_cleaned = _LOWER_CASE, lowered, lowered
        if cleaned != text:
            read_cleaned = cleaned.lower()
    else:
        patterns, read, read_cleaned = _IGNORING_CASE, text, cleaned
    return Cues(
        # Asking for a person is always honoured, even inside a sentence that also tries to
        # instruct the bot: it is a right, not a change of policy.
        _asks_for_person(read, lowered, patterns),
        injection,
        cleaned,
        read_cleaned,
        patterns,
    )


def closes_after_offer(text: str, last_reply: str) -> bool:
    """A bare "no" / "that's all" right after the bot asked whether there is anything else."""
    return bool(_CLOSING_NO.match(text)) and bool(_ANYTHING_ELSE.search(last_reply))


def is_bare_no(text: str) -> bool:
    """A short "no thanks" / "that's all" with nothing else in it."""
    return bool(_CLOSING_NO.match(text))
