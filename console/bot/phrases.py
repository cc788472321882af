"""What the embedded bot says: every reply template in one place, written for Tandem.

Templates are plain text (never markup). :func:`pick` chooses a variant from a seed (the
conversation and turn), so replies vary between conversations but a replay says the same.
"""

from __future__ import annotations


def lower_first(text: str) -> str:
    """Lower-case the first letter so a step reads on inside a sentence ("PIN ..." stays)."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def pick(options: tuple[str, ...], seed: int) -> str:
    """One of ``options``, the same for the same seed."""
    return options[seed % len(options)]


OPENERS = ("", "Sure. ", "Happy to help. ", "Good question. ", "", "Of course. ")
EMPATHY = (
    "I'm sorry for the hassle. ",
    "Sorry this has been frustrating. ",
    "I understand, let's sort this out. ",
)
CLOSERS = (
    "",
    " Is there anything else I can help with?",
    " Does that answer your question?",
    "",
    " Let me know if anything is unclear.",
)
CLOSINGS = (
    "You're welcome{name}! Glad I could help. Have a lovely day.",
    "My pleasure{name}. Take care, and come back any time.",
    "Glad that's sorted{name}. Have a good day!",
)
GREETINGS_FIRST = (
    "Hi{name}! I'm Pennant's virtual assistant. What can I help you with today?",
    "Hello{name}, thanks for getting in touch. How can I help?",
)
GREETINGS_AGAIN = ("Hi again! What can I help you with?", "Hello! What else can I do for you?")
FALLBACKS = (
    "I'm not sure about that one, and I'd rather not guess. Could you tell me a bit more? I can help "
    "with cards, payments and transfers, Pay-in-3, fees and limits, and your account.",
    "I don't have a reliable answer to that, I'm afraid. Could you put it another way, or tell me "
    "which part of your account it's about?",
)
FALLBACKS_AGAIN = (
    "I'm sorry, I still can't find a reliable answer to that. A colleague from our team can help: "
    "just say if you'd like me to bring someone in.",
)
HANDOFF = "Of course. I'm bringing in a person from our team; they'll see everything we've discussed so far."
INJECTION = (
    "I can only help with questions about your Pennant account and our services, and I can't "
    "change how I work or share internal details. What can I help you with today?"
)
ACK = ("Great. Is there anything else I can help with?", "Good. Anything else I can do for you?")
CHECK_BACK = (
    "If anything you see doesn't match what I described, tell me what's on your screen and I'll "
    "help. Is there anything else?",
    "That should be all. If something looks different on your side, tell me what you see and "
    "I'll help.",
)
MISSED = (
    "Sorry, that didn't solve it. Could you tell me what happens when you try, or what you see "
    "on the screen? If you'd rather, I can bring in a colleague.",
    "I'm sorry my answer didn't help. Tell me a bit more about what's going on, or I can pass you "
    "to a colleague.",
)
REPHRASE = ("Sorry, I wasn't clear. Put simply: ", "Sorry, let me put that more simply: ")
PROMPT = "Could you tell me a little more about what you need? I can help with cards, payments and transfers, Pay-in-3, fees and your account."
CLARIFY_TOPIC = {
    # Neutral on purpose: "a question about my card" is not bad news, and apologising for it
    # reads as a template.
    "card": "Sure. What's happening with the card: is a payment being declined, is the PIN not "
    "accepted, has it been lost, or has it not arrived yet?",
    "payment": "Happy to look into it. Is this about a payment you sent, money you're expecting to "
    "receive, or a card payment you don't recognise?",
    "app": "Let's sort it out. Is the app not letting you log in, or is something inside the app not "
    "working as expected?",
    "account": "Of course. Is it about opening or verifying your account, its limits and fees, or "
    "closing it?",
}
TOPIC_OF = {
    "card": "card",
    "cards": "card",
    "pay": "payment",
    "paid": "payment",
    "payment": "payment",
    "payments": "payment",
    "money": "payment",
    "paying": "payment",
    "app": "app",
    "account": "account",
    "accounts": "account",
}
CLARIFY_DEFAULT = (
    "I'd like to help. Could you tell me a bit more: is it about your card, a payment "
    "or transfer, Pay-in-3, or logging in to the app?"
)
# Our own questions about what the customer meant: the next message is read as the answer.
CLARIFYING = frozenset({*CLARIFY_TOPIC.values(), CLARIFY_DEFAULT, PROMPT, INJECTION})
WHICH = "Just so I point you the right way:"
# The quick reply offered beside the two titles; the bot reads it as "neither".
NEITHER_CHOICE = "Something else"


def is_clarifying(reply: str) -> bool:
    """Was our last reply a question about what the customer meant (not "anything else?")."""
    return reply in CLARIFYING or reply.startswith(WHICH)
