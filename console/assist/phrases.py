"""The embedded engine's phrase banks: what a competent agent says in each situation.

Every bank holds several wordings of one move (greet, introduce, acknowledge, lead into the
facts, close); the engine picks one per draft with a seeded random choice, so two drafts in a
row read differently while each still says the right thing. Placeholders: ``{name}`` (the
customer's first name), ``{agent}``, ``{loss}`` ("the loss of your mother"), ``{topic}``
("your refund"). Wordings without ``sorry`` exist for every situation that may be combined
with another, so a draft never apologises twice.

Situations, strongest first (the first one present leads the draft):
safety > bereavement > fraud > vulnerability > health > hardship > frustration > complaint >
abuse > negative > human_request > long_wait > routine.
"""

from __future__ import annotations

# Triage reasons (DESIGN.md section 5) grouped into the situations the phrasing knows.
SITUATIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("safety", frozenset({"safety"})),
    ("bereavement", frozenset({"bereavement"})),
    ("fraud", frozenset({"fraud"})),
    ("vulnerability", frozenset({"vulnerability"})),
    ("health", frozenset({"health"})),
    ("hardship", frozenset({"financial_hardship"})),
    (
        "frustration",
        frozenset({"frustration", "repeat_question", "bot_fallback", "sentiment_drop"}),
    ),
    ("complaint", frozenset({"complaint_threat", "churn_threat"})),
    ("abuse", frozenset({"abuse", "shouting"})),
    ("negative", frozenset({"negative_sentiment"})),
    ("human_request", frozenset({"human_request"})),
    ("long_wait", frozenset({"long_wait"})),
)

# Situations that call for feeling words; the rest get a plain, friendly, direct reply.
EMOTIONAL = frozenset(
    {
        "safety",
        "bereavement",
        "fraud",
        "vulnerability",
        "health",
        "hardship",
        "frustration",
        "complaint",
    }
)

GREETING = ("Hi {name},", "Hello {name},", "Hi {name},", "Hi {name} —")
GREETING_NO_NAME = ("Hi there,", "Hello,", "Hi,")
GREETING_FORMAL = ("Dear {name},", "Hello {name},")
GREETING_FORMAL_NO_NAME = ("Hello,", "Good day,")

INTRO = (
    "I'm {agent} from the support team, and I've taken over from our virtual assistant.",
    "{agent} here from the support team; I'm picking this up from our assistant.",
    "my name is {agent} and I'll be looking after you from here.",
    "I'm {agent}, one of the support team, and I'll take it from here.",
)
INTRO_NO_NAME = (
    "I'm from the support team, and I've taken over from our virtual assistant.",
    "I'm a member of the support team and I'll be looking after you from here.",
)
# Only where the bot spoke to the customer and no other person did: the rest say nothing of
# whom the conversation came from.
FROM_THE_ASSISTANT = ("virtual assistant", "our assistant")
# Another person of the team wrote to the customer first (a transfer, or a supervisor barged in).
INTRO_COLLEAGUE = (
    "I'm {agent} from the support team, and I'm taking over from my colleague.",
    "{agent} here from the support team; I'm picking this up from my colleague.",
    "my name is {agent} and I'll be looking after you from here.",
)
INTRO_COLLEAGUE_NO_NAME = (
    "I'm from the support team, and I'm picking this up from my colleague.",
    "I'm a member of the support team and I'll be looking after you from here.",
)
# The customer was last talking to a colleague, by name (the customer's side names them too).
INTRO_FROM_COLLEAGUE = (
    "I'm {agent} from the support team, and I'm taking over from my colleague {colleague}.",
    "{agent} here from the support team; I'm picking this up from my colleague {colleague}.",
    "my name is {agent} and I'll be looking after you from here.",
)
INTRO_FROM_COLLEAGUE_NO_NAME = (
    "I'm from the support team, and I'm picking this up from my colleague {colleague}.",
    "I'm a member of the support team and I'll be looking after you from here.",
)
# The customer was told a colleague joined, and that colleague never wrote (a supervisor
# barged in before the first reply): this is the first person to write, in the colleague's place.
INTRO_AFTER_JOINED = (
    "I'm {agent} from the support team, and I'll be looking after you in place of my colleague {colleague}.",
    "{agent} here from the support team; I'm looking after this now instead of {colleague}.",
    "my name is {agent} and I'll be looking after you from here.",
)
INTRO_AFTER_JOINED_NO_NAME = (
    "I'm from the support team, and I'll be looking after you in place of my colleague {colleague}.",
    "I'm a member of the support team and I'll be looking after you from here.",
)
# When the customer asked for a person, say first that they have one.
INTRO_HUMAN = (
    "you're talking to a person now: I'm {agent} from the support team.",
    "this is {agent}, a real person from the support team.",
    "I'm {agent}, and I'm a person, not the bot, so let's sort this out together.",
)
INTRO_HUMAN_NO_NAME = ("you're talking to a person now, from the support team.",)

# The agent already wrote in this conversation: no second greeting or introduction, and the
# feelings were acknowledged in the first reply, so the follow-up gets straight to it.
FOLLOW_UP = ("Thanks, {name}.", "Thanks for getting back to me, {name}.", "Thank you, {name}.")
FOLLOW_UP_NO_NAME = ("Thanks for getting back to me.", "Thank you.", "Got it, thanks.")
STILL_HERE = ("Yes, I'm still here, {name}.", "I'm still here, {name}, and on it.")
STILL_HERE_NO_NAME = ("Yes, I'm still here.", "I'm still here and on it.")

# Lines that say what happened in the conversation. Each is offered only when the transcript
# shows it (console.assist.context: ``repeated``, the customer said it again; ``bot``, the bot
# answered and fell short, or said it could not), so a customer who asked for a person in their
# first message is never told the assistant failed them. Lines not in CLAIMS claim nothing.
REPEATED = "I'm sorry you've had to explain this more than once. I've read the whole conversation, so you won't need to repeat anything."
REPEATED_NO_SORRY = "I can see you've had to ask this more than once, and I understand how frustrating that is. I've read everything, so there's no need to repeat it."
BOT_FELL_SHORT = "I can see the assistant didn't manage to sort this out, and I understand how frustrating that is. I've read everything so far."
TOOK_LONGER = "I'm sorry this has taken longer than it should have. I've gone through the conversation and I'm on it now."
READ_IT_ALL = "I've read the whole conversation, so you won't need to repeat anything."
BOT_COULD_NOT = "I know the assistant couldn't help with this, so I'm handling it myself now."
RESOLVED_THIS_TIME = "I'll make sure this gets resolved this time."
CLAIMS: dict[str, frozenset[str]] = {
    REPEATED: frozenset({"repeated"}),
    REPEATED_NO_SORRY: frozenset({"repeated"}),
    BOT_FELL_SHORT: frozenset({"bot"}),
    TOOK_LONGER: frozenset({"repeated", "bot"}),
    READ_IT_ALL: frozenset({"repeated", "bot"}),
    BOT_COULD_NOT: frozenset({"bot"}),
    RESOLVED_THIS_TIME: frozenset({"repeated", "bot"}),
}
"""Line -> what must have happened for it (any one of them)."""

# The lead acknowledgement, by situation. Each first entry-set may say sorry; SECONDARY holds
# softer lines for a second situation in the same draft.
ACK: dict[str, tuple[str, ...]] = {
    "safety": (
        "I'm really glad you told me. Your safety matters far more than anything on your account right now.",
        "thank you for telling me. Before anything else, your safety is what matters most to me.",
    ),
    "bereavement": (
        "I'm so sorry for {loss}.",
        "I'm very sorry for {loss}, and thank you for letting us know.",
        "please accept my condolences on {loss}.",
    ),
    "fraud": (
        "I can hear how worrying this is, and we'll deal with it right now.",
        "thank you for raising this straight away; that was exactly the right thing to do, and we'll secure your account now.",
        "I understand how unsettling this is. Let's make sure your money is safe first.",
    ),
    "vulnerability": (
        "thank you for telling me what's going on; it helps me help you properly.",
        "I'm sorry you're going through this. We can take it one step at a time, at whatever pace suits you.",
    ),
    "health": (
        "I'm sorry to hear you're unwell. Let's keep this as easy for you as we can.",
        "I hope you're taking care of yourself. I'll keep this simple so you don't have to do much.",
    ),
    "hardship": (
        "thank you for being open with me about this; it isn't easy to bring up, and there are options we can look at together.",
        "I'm sorry things are tight at the moment. Let's look at what we can do so this doesn't add to the pressure.",
        "thanks for telling me. Money worries are stressful, and you're right to talk to us early.",
    ),
    "frustration": (
        REPEATED,
        REPEATED_NO_SORRY,
        BOT_FELL_SHORT,
        TOOK_LONGER,
        "I can hear how frustrating this is, and I'm going to help you with it now.",
        "I completely understand the frustration, and I'm on it now.",
    ),
    "complaint": (
        "I understand you're unhappy with how this has gone, and I want to put it right.",
        "I hear you, and I'd like the chance to fix this properly.",
    ),
    "abuse": (
        "I want to get this sorted for you.",
        "let's get this fixed.",
    ),
    "negative": (
        "I'm sorry this has been a hassle.",
        "I can see this hasn't been straightforward, so let's get it sorted.",
    ),
    "long_wait": (
        "thanks for waiting, I'm with you now.",
        "thank you for your patience while you waited.",
    ),
}

# A second situation, mentioned briefly after the lead one; none of these apologise.
SECONDARY: dict[str, tuple[str, ...]] = {
    "frustration": (
        READ_IT_ALL,
        BOT_COULD_NOT,
        "I'll make sure this gets sorted.",
    ),
    "fraud": ("We'll make sure your account is safe as part of this.",),
    "hardship": ("We'll also look at options that make this easier on your budget.",),
    "long_wait": ("Thank you for waiting.",),
    "complaint": ("I want to put this right for you.",),
    "health": ("I'll keep this as simple as I can for you.",),
    "vulnerability": ("We can go at whatever pace suits you.",),
}

# Routine questions: friendly and direct, never sorry.
# A problem to solve ("my card was declined").
ROUTINE = (
    "happy to help with {topic}.",
    "I can help with {topic}.",
    "let's get {topic} sorted.",
    "thanks for your message. I can help with {topic}.",
)
# A question to answer ("what's the limit on contactless?").
ROUTINE_QUESTION = (
    "happy to help with {topic}.",
    "I can help with {topic}.",
    "sure, I can help with {topic}.",
    "thanks for your message. I can help with {topic}.",
)
ROUTINE_NO_TOPIC = (
    "happy to help.",
    "thanks for your message.",
    "I can help with that.",
)

# Leading into the facts from the knowledge base.
LEAD_STEPS = ("Here's what to do:", "These are the steps:", "This is the quickest way:")
LEAD_FACTS = ("Here's how it works:", "This is how it works:", "To explain how this works:")
# Words that make a knowledge-base fact useful in a situation (they weigh in the choice of
# facts, next to the customer's own words).
FACT_WORDS: dict[str, frozenset[str]] = {
    "fraud": frozenset({"freeze", "report", "refund", "reimburse", "stop", "block", "new card"}),
    "bereavement": frozenset(
        {"executor", "certificate", "freeze", "funeral", "balance", "no rush"}
    ),
    "hardship": frozenset({"pause", "plan", "holiday", "fees", "advice", "lower"}),
    "vulnerability": frozenset(
        {"needs", "trusted", "time", "pause", "support", "attorney", "urgent"}
    ),
    "health": frozenset({"needs", "trusted", "time", "pause", "attorney", "urgent", "writing"}),
    "frustration": frozenset({"trace", "chase", "reference", "dispute", "escalate"}),
}

# Steps first when money is at risk.
LEAD_STEPS_FIRST = {
    "fraud": ("First, let's protect your account:", "The first thing to do right now:"),
}
LEAD_FIRST = {
    "fraud": ("Here's what you need to know:", "A few things that matter here:"),
    "bereavement": (
        "When you're ready, this is how it works:",
        "Here's what happens next, whenever you're ready:",
    ),
    "vulnerability": ("Here's what we can do:",),
    "health": ("Here's what we can do:",),
    "hardship": ("Here's what we can do:", "There are a few options:"),
    "frustration": ("Here's what happens now:", "To get this sorted:"),
}
# When the assistant already gave the article's answer and it did not help.
ALREADY_SAID = (
    "I can see the assistant already shared the standard steps, so I won't repeat them.",
    "The assistant has already been through the usual steps with you, so let's not go over them again.",
)
NEXT_STEP_PERSONAL = (
    "I'll look into this on our side now, and come back to you as soon as I have an answer.",
    "I'm checking this on your account directly, and I'll update you here in a few minutes.",
)
# The bot answered and the customer has not written since: add, don't repeat.
ADD_TO_BOT = (
    "To add to the assistant's answer:",
    "One more thing on top of what the assistant said:",
)
BOT_ANSWERED = (
    "Did the assistant's answer cover what you needed, or is there something specific I can check for you?",
    "I've read the assistant's answer above. Is there anything in it you'd like me to check or explain?",
)
# Something the bot did not say yet, from the same article.
ADDING = ("One thing worth adding:", "It may also help to know:")
# Nothing in the knowledge base: say what happens next, ask for what is needed.
NO_ARTICLE = (
    "I'm looking into this for you now. Could you tell me a little more, for example when it happened and any reference you can see?",
    "Let me check this for you. Could you share any details that might help, such as the date, the amount or a reference?",
)
NO_ARTICLE_TOPIC = (
    "I'm looking into {topic} for you now. Could you tell me a little more, for example when it happened and any reference you can see?",
    "Let me check {topic} for you. Could you share the date, the amount or a reference if you have one?",
)
# A request for a person with nothing asked yet.
ASK_WHAT = ("What can I help you with today?", "How can I help?")

SAFETY_HELP = (
    "If you're in immediate danger, please contact your local emergency services now. If you'd "
    "like someone to talk to, a crisis line such as Samaritans (116 123 in the UK and Ireland) "
    "is there day and night."
)

CLOSING: dict[str, tuple[str, ...]] = {
    "safety": ("I'm here, and you can reply whenever you're ready.",),
    "bereavement": (
        "Please take all the time you need; there's no rush on any of this.",
        "There's no rush at all. Reply whenever you're ready and I'll help with the next step.",
        "I'll keep this as simple as I can for you.",
    ),
    "fraud": (
        "Once that's done, we'll go through the payments together.",
        "I'll stay with you while we go through this.",
    ),
    "vulnerability": ("I'm here to help, so just let me know what works best for you.",),
    "health": ("Reply whenever it suits you; there's no rush.",),
    "hardship": (
        "We'll find something that works for you.",
        "Let me know what feels manageable and we'll go from there.",
    ),
    "frustration": (
        "I'll stay on this until it's sorted.",
        RESOLVED_THIS_TIME,
    ),
    "complaint": (
        "If you'd still like to raise a formal complaint afterwards, I'll tell you exactly how.",
        "If you'd still like to make a complaint once we've sorted this, I'll explain how.",
    ),
    "routine": (
        "Let me know if anything else comes up.",
        "Is there anything else I can help with?",
        "",
        "Hope that helps!",
    ),
}
CLOSING_WARM = (
    "I'm happy to help with anything else, big or small.",
    "Just message me here if anything else comes up; I'm glad to help.",
)
SIGN_OFF_FORMAL = ("Kind regards,", "Best regards,")

# Topics a customer asks about, found by keyword in their words and named by these fixed
# phrases, so the draft can say what they asked without echoing their text.
TOPICS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("refund",), "your refund"),
    (("chargeback", "dispute"), "the dispute"),
    (("direct debit",), "the direct debit"),
    (("standing order",), "the standing order"),
    (("overdraft",), "your overdraft"),
    (("loan", "repayment"), "your loan"),
    (("pin",), "your PIN"),
    (
        ("password", "log in", "login", "locked out", "sign in", "two-factor", "2fa", "passcode"),
        "getting you back into your account",
    ),
    (("verify", "verification", "identity", "id check", "kyc"), "verifying your identity"),
    (("exchange rate", "currency", "foreign"), "the exchange rate"),
    (("top up", "top-up", "topup"), "your top-up"),
    (("cash", "atm", "withdraw"), "the cash withdrawal"),
    (("transfer", "sent money", "send money", "wire"), "your transfer"),
    (("fee", "charged", "charge"), "the charge"),
    (("statement",), "your statement"),
    (("limit",), "your limit"),
    (("card",), "your card"),
    (("payment", "paid", "pay "), "your payment"),
    (("close my account", "close account", "cancel my account"), "closing your account"),
    (
        ("address", "phone number", "email address", "change my name", "details"),
        "updating your details",
    ),
    (("account",), "your account"),
)

# Bereavement: who the customer lost, found by a fixed list, named by a fixed phrase.
RELATIONS = (
    "mother",
    "mum",
    "mom",
    "father",
    "dad",
    "husband",
    "wife",
    "partner",
    "son",
    "daughter",
    "brother",
    "sister",
    "grandmother",
    "grandfather",
    "gran",
    "grandma",
    "grandpa",
    "nan",
    "aunt",
    "uncle",
    "friend",
    "fiancé",
    "fiance",
    "fiancée",
    "child",
    "baby",
    "parent",
)

# Instructions the embedded engine understands (the LLM engine gets any text verbatim).
SHORTER = ("short", "brief", "concise", "less", "trim", "tl;dr")
LONGER = ("longer", "more detail", "detailed", "explain more", "expand")
FORMAL = ("formal", "professional", "polite")
WARMER = ("warm", "friendl", "kind", "empath", "caring", "gentle", "softer")
CASUAL = ("casual", "informal", "relaxed")
NO_APOLOGY = (
    "no apolog",
    "don't apolog",
    "dont apolog",
    "without apolog",
    "no sorry",
    "less sorry",
    "stop apolog",
    "fewer apolog",
)

# Formal register: contractions spelled out.
EXPANSIONS = (
    ("I'm", "I am"),
    ("I've", "I have"),
    ("I'll", "I will"),
    ("I'd", "I would"),
    ("you're", "you are"),
    ("you've", "you have"),
    ("you'll", "you will"),
    ("you'd", "you would"),
    ("we'll", "we will"),
    ("we're", "we are"),
    ("we've", "we have"),
    ("let's", "let us"),
    ("Let's", "Let us"),
    ("it's", "it is"),
    ("It's", "It is"),
    ("that's", "that is"),
    ("there's", "there is"),
    ("Here's", "Here is"),
    ("here's", "here is"),
    ("isn't", "is not"),
    ("don't", "do not"),
    ("doesn't", "does not"),
    ("didn't", "did not"),
    ("can't", "cannot"),
    ("won't", "will not"),
    ("haven't", "have not"),
    ("hasn't", "has not"),
    ("wasn't", "was not"),
    ("aren't", "are not"),
    ("shouldn't", "should not"),
    ("couldn't", "could not"),
    ("You're", "You are"),
    ("That's", "That is"),
    ("There's", "There is"),
    ("We'll", "We will"),
)
