"""Drafts metrics are visible in the console: the supervisor view and the palette entry."""

from __future__ import annotations

from pathlib import Path

from ui_support import screen_up, wait_until

from console.ui.app import TandemApp
from console.ui.screens.supervisor import SupervisorScreen
from console.ui.widgets.draft_metrics import DraftMetricsPanel, DraftMetricsScreen
from store import Store, drafts, lifecycle


def _drafts(db_path: Path) -> None:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Greta")
        lifecycle.add_customer_message(s, cid, "my card is blocked")
        lifecycle.claim(s, cid, "ana")
        for sent in (
            "Hi Greta, I have unblocked your card.",
            "Hi Greta, your card works again now.",
        ):
            d = drafts.start(s, cid, engine="embedded", agent="ana")
            drafts.finish(
                s, d, text="Hi Greta, I have unblocked your card.", first_text_ms=3.0, total_ms=9.0
            )
            mid = lifecycle.agent_reply(s, cid, "ana", sent)
            drafts.mark_sent(s, d, sent, message_id=mid)


async def test_supervisor_view_shows_draft_metrics(db_path: Path) -> None:
    _drafts(db_path)
    app = TandemApp(db_path, "lead", supervisor=True, interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("s")
        sup = await screen_up(pilot, SupervisorScreen)
        panel = sup.query_one(DraftMetricsPanel)
        # One of the two drafts went out unchanged: half accepted as written.
        await wait_until(pilot, lambda: "50" in str(panel.render()), what="draft metrics")
        assert "embedded" in str(panel.render())


async def test_palette_offers_draft_statistics_on_the_wall(db_path: Path) -> None:
    _drafts(db_path)
    app = TandemApp(db_path, "lead", interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        titles = [title for title, _help, _cb in app.screen.palette_commands()]
        assert "Draft statistics" in titles
        callback = dict((t, cb) for t, _h, cb in app.screen.palette_commands())["Draft statistics"]
        callback()
        await wait_until(pilot, lambda: isinstance(app.screen, DraftMetricsScreen), what="modal")


def test_time_lost_to_a_failed_llm_is_shown_apart(db_path: Path) -> None:
    from console.ui.widgets.draft_metrics import metrics_text

    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Greta")
        lifecycle.add_customer_message(s, cid, "my card is blocked")
        lifecycle.claim(s, cid, "ana")
        fell_back = drafts.start(s, cid, engine="llm", model="m", agent="ana")
        drafts.finish(
            s,
            fell_back,
            text="Hi Greta.",
            first_text_ms=2.0,
            total_ms=17_002.0,
            engine="embedded",
            llm_lost_ms=17_000.0,
        )
        cut = drafts.start(s, cid, engine="llm", model="m", agent="ana")
        drafts.finish(
            s, cut, text="Hi Gre", first_text_ms=900.0, total_ms=1_500.0, incomplete="cut off"
        )
        text = metrics_text(drafts.draft_metrics(s)).plain
    assert "first text, embedded: p50 2.0 ms · p90 2.0 ms (1)" in text
    assert "waited on a failed LLM: p50 17000 ms · p90 17000 ms (1)" in text
    assert "1 stopped short" in text
