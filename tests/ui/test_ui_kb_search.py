"""Knowledge-base search in the console: ctrl+k, results as you type, insert into the reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ui_support import notes, screen_up, wait_until

from console.kb import ensure_loaded
from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from console.ui.screens.kb_search import KbSearchScreen, customer_answer, query_from
from console.ui.screens.wall import WallScreen
from console.ui.widgets.composer import Composer
from store import Store, lifecycle
from store.kb import KbArticle, get, search, upsert_articles

SIZE = (160, 48)
STOLEN = "someone stole my card from my bag yesterday, how do I block it?"


def _conversation(db_path: Path, *texts: str) -> int:
    """A conversation escalated to the queue, on a store with the bundled knowledge base."""
    with Store(db_path) as s:
        ensure_loaded(s)
        cid = lifecycle.open_conversation(s, "Maya")
        for text in texts:
            mid = lifecycle.add_customer_message(s, cid, text).message_id
            lifecycle.bot_reply(s, cid, "Let me check that for you.", reply_to=mid)
        lifecycle.escalate(s, cid, reasons=["human_request"], level="empathy", score=0.7)
    return cid


def _counts(db_path: Path) -> tuple[int, int]:
    with Store(db_path) as s:
        messages = s.one("SELECT count(*) FROM messages")
        events = s.one("SELECT count(*) FROM events")
    assert messages is not None and events is not None
    return int(messages[0]), int(events[0])


async def _taken_over(pilot: Any, app: TandemApp, cid: int) -> tuple[ConversationScreen, Composer]:
    """Take the conversation over from the wall; the draft finishes, then the editor is emptied."""
    await wait_until(pilot, lambda: cid in app.rows, what="the tile")
    await pilot.press("t")
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ConversationScreen) and app.screen.mine,
        what="owned",
    )
    conv = app.screen
    assert isinstance(conv, ConversationScreen)
    composer = conv.query_one(Composer)
    await wait_until(
        pilot, lambda: composer.draft_id is not None and not composer.streaming, what="draft done"
    )
    composer.clear()
    return conv, composer


async def _open_search(pilot: Any, app: TandemApp) -> KbSearchScreen:
    await pilot.press("ctrl+k")
    await wait_until(pilot, lambda: isinstance(app.screen, KbSearchScreen), what="the search")
    screen = app.screen
    assert isinstance(screen, KbSearchScreen)
    await wait_until(pilot, lambda: screen.answered is not None, what="first search")
    return screen


def _status(screen: KbSearchScreen) -> str:
    return str(screen.query_one("#kb-status").render())


async def _search_for(pilot: Any, screen: KbSearchScreen, query: str) -> None:
    screen.query_one("#kb-query").value = query
    await wait_until(pilot, lambda: screen.answered == query, what=f"search for {query!r}")
    await pilot.pause()


def test_customer_answer_is_the_summary_facts_and_steps_without_headings() -> None:
    article = KbArticle(
        "KB-X",
        "Title",
        "Summary line one\nline two.\n\n- Fact A\n- Fact B\n\n## Steps\n1. Do this\n2. Then that",
    )
    assert (
        customer_answer(article)
        == "Summary line one line two.\n\n- Fact A\n- Fact B\n\n1. Do this\n2. Then that"
    )
    assert "#" not in customer_answer(article)
    # An article in no known shape is used as written.
    assert customer_answer(KbArticle("KB-Y", "T", "## Only a heading")) == "## Only a heading"


def test_query_from_customer_text_is_one_line_and_inert() -> None:
    q = query_from("my card\n\x1b[31mwas [bold]stolen[/bold]\t" + "word " * 100)
    assert "\n" not in q and "\x1b" not in q and "[bold]stolen[/bold]" in q
    assert len(q) <= 240


async def test_ctrl_k_prefills_the_customer_question_and_inserts_at_the_cursor(
    db_path: Path,
) -> None:
    cid = _conversation(db_path, "hi", STOLEN, "hello??")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        conv, composer = await _taken_over(pilot, app, cid)
        # The agent's own words, and the cursor on the empty line between them.
        composer.editor.text = "Hi Maya,\n\nKind regards, Sam"
        composer.editor.move_cursor((1, 0))
        before = _counts(db_path)

        screen = await _open_search(pilot, app)
        # The last customer message with searchable words ("hello??" has none).
        assert screen.query_one("#kb-query").value == STOLEN
        assert screen.hits and screen.hits[0].id == "KB-008"  # lost or stolen card
        assert "article" in _status(screen)
        assert str(screen.query_one("#kb-article").render()).startswith(screen.hits[0].title)

        # The query starts selected: typing replaces it, and the results follow (debounced).
        await pilot.press(*"refund from a shop")
        # Its results, not only its start (``searched`` is set as the search begins).
        await wait_until(
            pilot, lambda: screen.answered == "refund from a shop", what="typed search's results"
        )
        assert screen.hits[0].id != "KB-008"
        assert any("refund" in h.title.lower() for h in screen.hits[:3])
        await pilot.press("down")
        picked = screen.hits[1]
        await wait_until(
            pilot,
            lambda: str(screen.query_one("#kb-article").render()).startswith(picked.title),
            what="the second article previewed",
        )

        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is conv, what="back in the conversation")
        with Store(db_path) as s:
            answer = customer_answer(get(s, picked.id))
        assert composer.text == f"Hi Maya,\n{answer}\nKind regards, Sam"
        # focus() takes effect a message later (Textual sets it with call_later).
        await wait_until(pilot, lambda: composer.editor.has_focus, what="the editor focused")
        assert composer.editor.cursor_location == (
            1 + answer.count("\n"),
            len(answer.splitlines()[-1]),
        )
        assert _counts(db_path) == before  # nothing sent, nothing logged


async def test_ctrl_y_replaces_the_selection_with_the_article_id(db_path: Path) -> None:
    cid = _conversation(db_path, STOLEN)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        conv, composer = await _taken_over(pilot, app, cid)
        composer.editor.text = "See article XXX for details."
        composer.editor.selection = ((0, 12), (0, 15))  # "XXX"
        screen = await _open_search(pilot, app)
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: app.screen is conv, what="back in the conversation")
        assert composer.text == f"See article {screen.hits[0].id} for details."


async def test_escape_closes_without_changes(db_path: Path) -> None:
    cid = _conversation(db_path, STOLEN)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        conv, composer = await _taken_over(pilot, app, cid)
        await pilot.press(*"my own words")
        before = _counts(db_path)
        await _open_search(pilot, app)
        await pilot.press(*"pin", "down")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is conv, what="back in the conversation")
        assert composer.text == "my own words"
        # focus() takes effect a message later (Textual sets it with call_later).
        await wait_until(pilot, lambda: composer.editor.has_focus, what="the editor focused")
        assert _counts(db_path) == before
        # ctrl+k is ours even in the editor (where it would delete to the end of the line).
        composer.editor.move_cursor((0, 3))
        await _open_search(pilot, app)
        await pilot.press("escape")
        assert composer.text == "my own words"


async def test_not_owner_searches_and_previews_but_does_not_insert(db_path: Path) -> None:
    cid = _conversation(db_path, STOLEN)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        await pilot.press("enter")  # open, do not take over
        conv = await screen_up(pilot, ConversationScreen)
        await wait_until(pilot, lambda: conv.loaded, what="transcript")
        assert not conv.mine
        screen = await _open_search(pilot, app)
        assert screen.hits and screen.hits[0].id == "KB-008"
        assert "take-over (ctrl+t)" in str(screen.query_one("#kb-blocked").render())
        await pilot.press("enter")
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.screen is screen  # still searching; nothing picked
        assert any("take-over (ctrl+t)" in n for n in notes(app))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is conv, what="back in the conversation")
        assert conv.query_one(Composer).text == ""
        assert not conv.mine


async def test_odd_or_empty_queries_give_no_articles(db_path: Path) -> None:
    cid = _conversation(db_path, STOLEN)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        conv, composer = await _taken_over(pilot, app, cid)
        screen = await _open_search(pilot, app)
        for query in ['"', "*", "NEAR(", "", "   ", '"* OR -', "a the of"]:
            await _search_for(pilot, screen, query)
            assert screen.hits == [], query
            assert _status(screen).startswith("no articles"), (query, _status(screen))
            assert str(screen.query_one("#kb-article").render()) == "Nothing to show."
        # FTS5 syntax around real words is just punctuation: the words are still found.
        await _search_for(pilot, screen, 'NEAR("pin" *) OR col:card')
        assert screen.hits and not _status(screen).startswith("search failed")
        # Enter with nothing found picks nothing.
        await _search_for(pilot, screen, "*")
        await pilot.press("enter")
        assert app.screen is screen
        assert composer.text == ""


async def test_article_text_is_never_markup(db_path: Path) -> None:
    with Store(db_path) as s:
        upsert_articles(
            s,
            [
                KbArticle(
                    "KB-900",
                    "Zebra [bold]tariff[/bold]",
                    "Zebra tariff [red]x[/red] \x1b[31m done.",
                )
            ],
        )
    cid = _conversation(db_path, "what is the zebra tariff?")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await _taken_over(pilot, app, cid)
        screen = await _open_search(pilot, app)
        assert screen.hits[0].id == "KB-900"
        shown = str(screen.query_one("#kb-article").render())
        assert "[bold]tariff[/bold]" in shown and "[red]x[/red]" in shown
        assert "\x1b" not in shown and "␛" in shown


async def test_wall_opens_a_read_only_search(db_path: Path) -> None:
    cid = _conversation(db_path, STOLEN)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        screen = await _open_search(pilot, app)
        assert screen.insert_blocked
        await pilot.press(*"card frozen")
        await wait_until(pilot, lambda: screen.answered == "card frozen", what="its results")
        assert screen.hits
        await pilot.press("escape")
        await screen_up(pilot, WallScreen)


async def test_results_are_ranked_like_the_bot_ranks_articles(db_path: Path) -> None:
    # bm25 alone puts the Pay-in-3 returns article first for this question; the bot's ranker
    # (coverage, title, product named or not) puts refunds from shops first, as an agent would.
    question = "can I get my refund for the shoes I returned"
    cid = _conversation(db_path, STOLEN)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        screen = await _open_search(pilot, app)
        await _search_for(pilot, screen, question)
        assert screen.hits[0].id == "KB-016"
    with Store(db_path) as store:
        assert search(store, question, limit=1)[0].id == "KB-004"  # what bm25 alone says


# Questions a draft and ctrl+k both rank. With two rankers, drafts quoted another article (or
# none) for the first three; bm25 alone puts the Pay-in-3 returns article first for the first.
SAME_FIRST = [
    "can I get my refund for the shoes I returned",
    "the hotel took a deposit on my card and never released it",
    "what happens if I miss an instalment",
    "How does pay in 3 work?",
    "I forgot my PIN",
    "how do I add my card to apple pay",
    "the cash machine kept my card",
]


async def test_a_draft_and_ctrl_k_put_the_same_article_first(db_path: Path) -> None:
    from console.assist.context import build_context

    cids = [_conversation(db_path, question) for question in SAME_FIRST]
    with Store(db_path) as s:
        drafted = [build_context(s, cid, agent="me").articles for cid in cids]
        bm25_first = [search(s, q, limit=1)[0].id for q in SAME_FIRST]
    assert all(drafted), "each question has an article to quote"
    assert [a[0].id for a in drafted] != bm25_first  # the ranker decides, not bm25 alone
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: set(cids) <= set(app.rows), what="the tiles")
        # The first question end to end: take it (n), its draft cites an article, and ctrl+k
        # (pre-filled with the customer's question) shows that article first.
        await pilot.press("n")
        # The claim is written off the event loop; the screen opens once it is stored.
        await wait_until(
            pilot, lambda: isinstance(app.screen, ConversationScreen), what="taken, opened"
        )
        conv = app.screen
        assert isinstance(conv, ConversationScreen) and conv.conversation_id == cids[0]
        composer = conv.query_one(Composer)
        await wait_until(
            pilot,
            lambda: composer.draft is not None and not composer.draft.streaming,
            what="the draft",
        )
        assert composer.draft is not None
        cited = composer.draft.kb_ids
        assert cited and cited[0] == drafted[0][0].id
        screen = await _open_search(pilot, app)
        assert screen.searched == SAME_FIRST[0]
        assert screen.hits[0].id == cited[0]
        # The others: the article the draft would quote is the one the search shows first.
        for question, articles in zip(SAME_FIRST[1:], drafted[1:], strict=True):
            await _search_for(pilot, screen, question)
            assert screen.hits[0].id == articles[0].id, question
