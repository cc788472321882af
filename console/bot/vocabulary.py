"""Word lists only the embedded bot reads: small talk, sensitive topics, closing words.

The words that decide how an article is ranked (generic, vague, feelings, products) and the
one stemmer live with the ranker, in :mod:`console.kb.words`.
"""

from __future__ import annotations

# Politeness and small talk: a message made only of these has no question in it.
CHATTER = frozenset(
    "thanks thank thx ty ta cheers bye goodbye great perfect brilliant awesome helpful lovely cool "
    "nice good fine ok okay sorted done appreciated appreciate much lot day morning afternoon evening "
    "hi hello hey hiya howdy yo greetings hallo hola bonjour all set everything nope nah nothing else "
    "see ya have wonderful fab fantastic amazing excellent super oh ah um hmm erm ooh aha wow right".split()
)
# Articles about loss, money worries or crime: answered plainly, without cheerful openers.
SENSITIVE_TAGS = frozenset({"bereavement", "hardship", "scam", "fraud", "extra support"})
# After a thank-you, these words close a conversation rather than ask something new.
CLOSING_WORDS = frozenset(
    "sorts sort sorted needed need helped help helpful answer answered clear understood understand "
    "makes make sense info information later hold wait perfect everything now got".split()
)
