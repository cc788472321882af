"""Sentiment adjustments on top of VADER's lexicon, for the language of support chats.

VADER's lexicon was rated on social-media text; a few of its words mean something else when
a customer writes to support ("help", "please", "credit", "top up", "like" as in "I would like").
Values use VADER's scale (-4 .. +4).
"""

from __future__ import annotations

# Words VADER rates that are neutral in support requests.
NEUTRAL = frozenset(
    {
        "help", "please", "pay", "credit", "free", "top", "kind", "like", "want", "care", "support",
        "save", "sure", "true", "yes", "ok", "okay", "well", "fine", "worth", "trust", "wish",
        "hope", "no", "cancel", "cancelled", "charged", "block", "blocked", "lost", "miss",
        "missing", "problem", "problems", "error", "fail", "failed", "stuck", "broken", "sorry",
        "thank", "thanks", "god", "lol", "haha", "joke", "funny", "interest", "interested",
        "share", "card", "accept", "accepted", "dear", "clear", "ready", "agree",
        "hi", "hello", "hey", "welcome", "matter", "pretty", "fan", "party", "favor", "favour",
        "honest", "solve", "solved", "resolve", "allow", "allowed", "increase", "limit", "limited",
        # "die" is the German article far more often than a wish in support chats ("danke für
        # die Info"); "want to die" is a safety cue and "my father died" a bereavement cue.
        "die",
    }
)

# Support-specific valences the general lexicon lacks or underrates.
EXTRA: dict[str, float] = {
    "useless": -2.5, "ridiculous": -2.2, "unacceptable": -2.6, "pathetic": -2.6,
    "incompetent": -2.5, "shambles": -2.5, "nightmare": -2.6, "scam": -2.8, "ripoff": -2.6,
    "overcharged": -2.0, "unresolved": -1.6, "ignored": -1.8, "ignoring": -1.8,
    "frustrating": -2.3, "frustrated": -2.4, "annoyed": -2.0, "furious": -3.2, "livid": -3.0,
    "disappointed": -2.2, "disappointing": -2.2, "fuming": -2.8, "appalling": -3.0,
    "shocking": -2.0, "disgraceful": -3.0, "laughable": -2.0, "absurd": -2.0,
    "worried": -1.8, "anxious": -1.8, "nervous": -1.6, "scared": -2.0, "terrified": -3.0,
    "desperate": -2.4, "devastated": -3.0, "heartbroken": -3.0, "struggling": -1.8,
    "upset": -2.0, "stressed": -1.9, "stressful": -1.9, "panic": -2.2, "panicking": -2.4,
    "waiting": -0.4, "still": -0.3, "again": -0.3, "nobody": -0.8, "never": -0.6,
    "wtf": -2.5, "ffs": -2.4, "smh": -1.8, "ugh": -1.8, "argh": -2.0, "grr": -2.0,
    "worst": -3.1, "rubbish": -2.2, "garbage": -2.4, "trash": -2.0,
    "resolved": 1.2, "sorted": 1.2, "fixed": 1.2, "works": 0.8, "worked": 1.0,
    "perfect": 2.2, "awesome": 2.5, "brilliant": 2.6, "excellent": 2.7, "amazing": 2.6,
    "appreciate": 2.0, "appreciated": 2.0, "grateful": 2.2, "lovely": 2.4, "helpful": 1.8,
    "clueless": -2.0, "unreliable": -2.0, "unprofessional": -2.2, "rude": -2.3, "misleading": -2.0,
    # Emoji and emoticons (tokenised by console.triage.text).
    "😡": -3.0, "😠": -2.8, "🤬": -3.2, "😤": -2.2, "😒": -1.6, "🙄": -1.8, "😩": -2.2, "😫": -2.2,
    "😢": -2.0, "😭": -2.2, "😞": -2.0, "😔": -1.8, "☹": -2.0, "🙁": -1.8, "😕": -1.2, "👎": -2.0,
    "💩": -2.0, "😣": -2.0, "😖": -2.0, "😑": -1.0, "🤦": -2.0, "😓": -1.5, "😰": -2.0, "😱": -2.0,
    "😊": 2.0, "🙂": 1.2, "😀": 2.0, "😃": 2.0, "😄": 2.2, "😁": 2.0, "😍": 2.6, "🥰": 2.6,
    "❤": 2.4, "💕": 2.2, "👍": 1.6, "🙏": 1.2, "🎉": 2.2, "🤗": 2.0, "🙌": 2.0,
    ":(": -1.9, ":-(": -1.9, ":/": -1.2, ":-/": -1.2, ":|": -0.8, ":)": 1.6, ":-)": 1.6,
}

NEGATORS = frozenset(
    {
        "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere",
        "without", "hardly", "barely", "scarcely", "don't", "doesn't", "didn't", "isn't",
        "wasn't", "aren't", "weren't", "won't", "wouldn't", "can't", "cannot", "couldn't",
        "shouldn't", "haven't", "hasn't", "hadn't", "ain't", "mightn't", "mustn't", "needn't",
        "noone", "nope", "n't", "lack", "lacks", "lacking",
    }
)

# Degree words that scale the next sentiment word (VADER's booster step is 0.293).
BOOSTERS: dict[str, float] = {
    "very": 0.293, "so": 0.293, "really": 0.293, "extremely": 0.4, "incredibly": 0.4,
    "absolutely": 0.4, "totally": 0.35, "completely": 0.35, "utterly": 0.4, "super": 0.3,
    "too": 0.25, "most": 0.293, "highly": 0.293, "truly": 0.293, "deeply": 0.35,
    "seriously": 0.35, "quite": 0.15, "bloody": 0.4, "fucking": 0.5, "damn": 0.35,
    "slightly": -0.293, "somewhat": -0.2, "little": -0.2, "bit": -0.2, "kinda": -0.2,
    "kind": -0.1, "sort": -0.1, "barely": -0.3, "marginally": -0.3,
}

# Clause boundaries stop negation and booster windows.
BOUNDARIES = frozenset({",", ".", ";", ":", "but", "however", "although", "though"})
