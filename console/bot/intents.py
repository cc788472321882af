"""Conversational intents the bot recognises before it searches the knowledge base.

Precompiled patterns only: this runs on every customer message on the hub, so it must cost
microseconds. The order of :func:`detect` is the order of precedence: a request for a person
wins over everything, an injection attempt is removed before anything else is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Cues:
    """What a customer message is asking for, read before any retrieval."""

    human: bool
    injection: bool
    cleaned: str  # the message without its injection sentences
    greeting: bool
    thanks: bool
    vague: bool
    how_to: bool
    how_long: bool
    how_much: bool
    question: bool
    confused: bool
    missed: bool


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


def _asks_for_person(text: str, lowered: str) -> bool:
    if not _has_any(lowered, _HUMAN_HINTS):
        return False
    for match in _HUMAN.finditer(text):
        if not _NOT_A_REQUEST.search(text[max(0, match.start() - 40) : match.start()]):
            return True
    return False


def _has_any(lowered: str, hints: tuple[str, ...]) -> bool:
    for hint in hints:  # a plain loop: no generator to resume for each hint
        if hint in lowered:
            return True
    return False


def strip_injection(text: str) -> tuple[str, bool]:
    """The text without sentences that try to instruct the bot, and whether any were found."""
    tagged = "<" in text and bool(_ROLE_TAG.search(text))
    if not tagged and not _has_any(text.lower(), _INJECTION_HINTS):
        return text, False
    if tagged:
        text = _ROLE_TAG.sub("\n", text)
    if not _INJECTION.search(text) and not tagged:
        return text, False
    # Once a message tries to instruct the bot, its "you are ..." sentences are part of the attempt.
    kept = [
        s for s in _SENTENCE.findall(text) if not _INJECTION.search(s) and not _ROLE_CLAIM.match(s)
    ]
    return " ".join(s.strip() for s in kept if s.strip()), True


def detect(text: str) -> Cues:
    """Read the cues of one customer message (any text; at most its first 2,000 characters)."""
    text = text[:2000]
    cleaned, injection = strip_injection(text)
    lowered = text.lower()
    # Thanks, goodbyes and the actual question open or close a message; in a long one the
    # middle is the story. "It doesn't work" and "I don't follow" matter only in short ones.
    short = len(cleaned) <= 400
    edges = cleaned if short else f"{cleaned[:200]} {cleaned[-200:]}"
    return Cues(
        # Asking for a person is always honoured, even inside a sentence that also tries to
        # instruct the bot: it is a right, not a change of policy.
        human=_asks_for_person(text, lowered),
        injection=injection,
        cleaned=cleaned,
        greeting=bool(_GREETING.search(cleaned)),
        thanks=bool(_THANKS.search(edges)),
        vague=short and bool(_VAGUE.search(cleaned)),
        how_to=bool(_HOW_TO.search(edges)),
        how_long=bool(_HOW_LONG.search(edges)),
        how_much=bool(_HOW_MUCH.search(edges)),
        question="?" in cleaned,
        confused=short and bool(_CONFUSED.search(cleaned)),
        missed=short and bool(_MISSED.search(cleaned)),
    )


def closes_after_offer(text: str, last_reply: str) -> bool:
    """A bare "no" / "that's all" right after the bot asked whether there is anything else."""
    return bool(_CLOSING_NO.match(text)) and bool(_ANYTHING_ELSE.search(last_reply))


def is_bare_no(text: str) -> bool:
    """A short "no thanks" / "that's all" with nothing else in it."""
    return bool(_CLOSING_NO.match(text))
