"""What an LLM draft must not slip past the agent unsaid.

The model is a guest: its draft streams into the agent's editor as it comes, and nothing is
sent without the agent. When the text is complete it is read once more for two things a
support reply never does, and the agent is told (the draft's notice, on the status line):

- it asks the customer for a secret: a PIN, password, passcode, one-time or security code, or
  the full card number ("never share your PIN" is advice, not a request);
- it holds a card number, IBAN, sort code or account number that no article it was given
  holds. Everything the model was shown was redacted first (:mod:`console.privacy`), so such
  a number is the model's own invention: a customer told to pay into it loses the money.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from console.assist.retrieval import Article
from console.privacy import redact

_SECRET = (
    r"(?:PINs?|(?:pin|pass|security|verification|one[- ]time|sms|otp|cvv2?|cvc)\s*codes?"
    r"|passcodes?|passwords?|one[- ]time passwords?|OTPs?|CVV2?|CVC"
    r"|(?:full |long |whole )?card numbers?)\b"
)
# A request: the secret is what is to be sent, within a few words of the verb ("reply with
# your full card number"); "confirm with your passcode" in the app is not one.
_REQUEST = re.compile(
    rf"\b(?:send|share|reply with|give|tell|provide|read out|type)\b\W+(?:\w+\W+){{0,4}}?"
    rf"(?P<secret>{_SECRET})",
    re.IGNORECASE,
)
_NOT = re.compile(
    r"\b(?:never|not|no one|nobody|don't|doesn't|won't|shouldn't|without)\b|n't\b",
    re.IGNORECASE,
)
# Asking for the last four digits of a card is how a payment is found, not a secret.
_LAST_DIGITS = re.compile(r"\b(?:last (?:four|4)|ending (?:in|with))\b", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
# The placeholders console.privacy writes for the numbers money can be sent to or taken from.
_ACCOUNT_KINDS = {"[card]": "a card number", "[iban]": "an IBAN", "[sort code]": "a sort code"}
_ACCOUNT_KINDS["[account]"] = "an account number"


def _asked_secret(text: str) -> str | None:
    """The secret a sentence of ``text`` asks the customer for, if one does."""
    for sentence in _SENTENCE.findall(text):
        request = _REQUEST.search(sentence)
        if request and not _NOT.search(sentence) and not _LAST_DIGITS.search(sentence):
            return request.group("secret")
    return None


def _placeholders(text: str) -> set[str]:
    redacted = redact(text)
    return {kind for kind in _ACCOUNT_KINDS if redacted.count(kind) > text.count(kind)}


def warnings(text: str, articles: Sequence[Article]) -> list[str]:
    """What the agent must know about this draft before sending it (empty when nothing)."""
    found = []
    secret = _asked_secret(text)
    if secret:
        found.append(f"the draft asks the customer for their {secret}: we never ask for it")
    invented = _placeholders(text) - set().union(*(_placeholders(a.body) for a in articles))
    for kind in sorted(invented):
        found.append(f"the draft holds {_ACCOUNT_KINDS[kind]} no article gave: check it")
    return found
