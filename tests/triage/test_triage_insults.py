"""Insults aimed at people and slurs are `abuse` in every language (agent protection, issue 18).

The console masks abusive customer text until an agent chooses to read it, so what the
lexicons miss reaches agents unmasked; what they over-match hides a customer's words. Both
directions are checked here, in each language's own words.
"""

from __future__ import annotations

import pytest

from console.triage import TriageEngine

ENGINE = TriageEngine()

ABUSIVE = [
    ("en", "you useless incompetent morons"),
    ("en", "you pathetic losers"),
    ("en", "you stupid retard"),
    ("sv", "ni är inkompetenta clowner"),
    ("sv", "era värdelösa pajasar"),
    ("sv", "ni är så dumma i huvudet"),
    ("no", "dere er inkompetente klovner"),
    ("no", "dere er ubrukelige"),
    ("no", "dere er noen tullinger"),
    ("da", "I er nogle inkompetente klovne"),
    ("da", "I er ubrugelige"),
    ("fi", "te olette kaikki idiootteja"),
    ("fi", "te olette täysiä ääliöitä"),
    ("fi", "te olette hyödyttömiä pellejä"),
    ("de", "ihr inkompetenten clowns"),
    ("de", "ihr seid so dumm"),
    ("de", "ihr nutzlosen vollpfosten"),
    ("de", "du schwuchtel"),
    ("nl", "jullie zijn incompetente clowns"),
    ("nl", "jullie zijn waardeloos"),
    ("nl", "vuile flikker"),
    ("fr", "bande d'incompétents"),
    ("fr", "vous êtes des clowns"),
    ("fr", "sale pédé"),
    ("fr", "vous êtes nuls"),
    ("es", "sois unos incompetentes"),
    ("es", "sois unos payasos"),
    ("es", "eres tonto"),
    ("it", "siete degli incompetenti"),
    ("it", "siete dei pagliacci"),
    ("it", "sei stupido"),
    ("pl", "jesteście niekompetentni"),
    ("pl", "jesteście klaunami"),
    ("pl", "ty głupku"),
    ("pl", "pedał"),
    ("pt", "vocês são incompetentes"),
    ("pt", "bando de palhaços"),
    ("pt", "seu burro"),
    ("pt", "seus inúteis"),
]

# Words near an insult that customers use about themselves, their card, a place or a person.
CLEAN = [
    "dummerweise habe ich meine Karte verloren",
    "blöderweise ist die Zahlung doppelt",
    "mein Sohn ist behindert",
    "ich wohne in der Mongolei",
    "sorry voor de domme vraag, waar is mijn pas",
    "meu cartão preto não funciona",
    "ele comprou um macaco para o carro",
    "qué tonto soy, olvidé el pin",
    "głupio mi, zapomniałem PIN",
    "je suis nul en informatique, aidez moi",
    "there is some dust on my card reader",
    "I regard this as urgent",
    "han er homofil og gift",
]


@pytest.mark.parametrize(("lang", "text"), ABUSIVE)
def test_insults_and_slurs_are_abuse(lang: str, text: str) -> None:
    verdict = ENGINE.score_message(text)
    assert "abuse" in verdict.reasons, (lang, verdict.lang, text)


@pytest.mark.parametrize("text", CLEAN)
def test_near_words_are_not_abuse(text: str) -> None:
    assert "abuse" not in ENGINE.score_message(text).reasons
