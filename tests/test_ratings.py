"""The customer's rating of a closed conversation, on a real store file."""

from __future__ import annotations

import pytest

from store import InvalidInput, InvalidTransition, NotFound, Store
from store import lifecycle as lc
from store.ratings import rate, rating_of


def test_a_closed_conversation_is_rated_once_per_closing_with_its_agent(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "my card is blocked")
    with pytest.raises(InvalidTransition, match="still open"):
        rate(store, cid, 4)
    lc.claim(store, cid, "ana")
    lc.resolve(store, cid, by="ana")
    first = rate(store, cid, 2, "  slow  ")
    assert (first.score, first.comment, first.agent, first.replaced) == (2, "slow", "ana", False)
    # The customer changes their mind: the same closing's rating is replaced, not added.
    again = rate(store, cid, 4, None)
    assert again.replaced and rating_of(store, cid) == {
        "score": 4,
        "comment": None,
        "agent": "ana",
        "created_at": rating_of(store, cid)["created_at"],  # type: ignore[index]
    }
    assert store.one("SELECT count(*) FROM ratings")[0] == 1
    assert store.one("SELECT count(*) FROM events WHERE kind = 'rated'")[0] == 2
    # Reopened: no rating applies until it is closed again; then a new one (the bot closed it).
    lc.add_customer_message(store, cid, "one more thing")
    assert rating_of(store, cid) is None
    lc.resolve(store, cid, by="hub")
    assert rate(store, cid, 5).agent is None
    assert store.one("SELECT count(*) FROM ratings")[0] == 2


@pytest.mark.parametrize(
    ("score", "comment", "words"),
    [
        (0, None, "1 to 5"),
        (6, None, "1 to 5"),
        (True, None, "1 to 5"),
        (4.5, None, "1 to 5"),
        ("5", None, "1 to 5"),
        (3, 7, "comment must be a string"),
        (3, "x" * 1001, "too long"),
        (3, "a\ud800b", "not valid Unicode"),
        (3, "a\x00b", "NUL"),
    ],
)
def test_bad_ratings_are_refused_and_store_nothing(
    store: Store, score: object, comment: object, words: str
) -> None:
    cid = lc.open_conversation(store, "Ben")
    lc.resolve(store, cid, by="hub")
    with pytest.raises(InvalidInput, match=words):
        rate(store, cid, score, comment)  # type: ignore[arg-type]
    assert store.one("SELECT count(*) FROM ratings")[0] == 0


def test_an_unknown_conversation(store: Store) -> None:
    with pytest.raises(NotFound):
        rate(store, 12345, 3)
