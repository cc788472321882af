"""The hand-over summary goes with a supervisor's transfer and greets the receiving agent."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI
from textual.widgets import Static
from ui_support import wait_until

from console.config import LLMConfig
from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from console.ui.screens.supervisor import SupervisorScreen
from store import Store, lifecycle
from store.feed import read_events
from store.handover import for_owner

SIZE = (160, 48)
# Set TANDEM_SCREENSHOTS=DIR to save the README's screenshot of a summary that came with a transfer.
SHOTS = os.environ.get("TANDEM_SCREENSHOTS")
ASK = "The app charged me twice for the Acme order. Can you refund the second payment?"
UPSET = "this is really annoying, I have asked three times already"


def _held_by_ana(db_path: Path) -> int:
    with Store(db_path) as s:
        lifecycle.register_agent(s, "sup", role="supervisor")
        lifecycle.register_agent(s, "bo")
        cid = lifecycle.open_conversation(s, "Maya")
        first = lifecycle.add_customer_message(s, cid, "hi").message_id
        lifecycle.bot_reply(s, cid, "Hi Maya! How can I help?", reply_to=first)
        ask = lifecycle.add_customer_message(s, cid, ASK).message_id
        lifecycle.bot_reply(
            s, cid, "I'm not sure about that one, and I'd rather not guess.", reply_to=ask
        )
        upset = lifecycle.add_customer_message(s, cid, UPSET).message_id
        mark = lifecycle.TriageMark(level="empathy", score=0.6, reasons=["frustration"])
        lifecycle.record_triage(s, cid, mark, message_id=upset)
        lifecycle.escalate(s, cid, reasons=["frustration"], level="empathy")
        lifecycle.claim(s, cid, "ana")
    return cid


def _transfer_note(db_path: Path, cid: int) -> dict[str, Any] | None:
    with Store(db_path) as s:
        moved = [e for e in read_events(s) if e.kind == "transferred" and e.conversation_id == cid]
        return for_owner(s, cid) if moved else None


async def _transfer(app: TandemApp, pilot: Any, cid: int, to: str) -> None:
    app.show_supervisor()
    await wait_until(pilot, lambda: isinstance(app.screen, SupervisorScreen), what="supervisor")
    screen = app.screen
    assert isinstance(screen, SupervisorScreen)
    await wait_until(
        pilot,
        lambda: screen.query("#queue-table") and screen.selected_id() == cid,
        what="the held conversation",
    )
    await pilot.press("x")
    await wait_until(pilot, lambda: app.screen is not screen, what="the agent prompt")
    await pilot.press(*to, "enter")


def _panel(app: TandemApp) -> str:
    found = app.screen.query("#handover")
    return str(found.first(Static).render()) if found else ""


async def test_the_embedded_summary_goes_with_the_transfer_and_tops_the_new_owners_screen(
    db_path: Path,
) -> None:
    cid = _held_by_ana(db_path)
    sup = TandemApp(db_path, "sup", supervisor=True, interval=0.05)
    async with sup.run_test(size=SIZE) as pilot:
        await _transfer(sup, pilot, cid, "bo")
        await wait_until(pilot, lambda: _transfer_note(db_path, cid), what="the stored transfer")
    note = _transfer_note(db_path, cid)
    assert note is not None and note["author"] == "sup"
    summary = note["summary"]
    assert summary["engine"] == "embedded"
    # It names the request and the reasons in the customer's own words, and invents nothing:
    # every quoted sentence is the customer's, and no figure appears that they did not write.
    quotes = re.findall(r"“([^”]+)”", summary["wants"])
    assert quotes and all(q.rstrip("…") in f"{ASK} {UPSET}" for q in quotes)
    assert any("refund the second payment" in q for q in quotes)
    assert "hi" not in quotes
    assert "frustrated" in summary["feeling"] and summary["reasons"] == ["frustration"]
    assert "said it did not know 1 time" in summary["tried"]
    assert note["text"].startswith("Wants: “")  # the note agents read in the transcript

    bo = TandemApp(db_path, "bo", interval=0.05)
    async with bo.run_test(size=SIZE) as pilot:
        bo.push_screen(ConversationScreen(cid))
        await wait_until(pilot, lambda: "with the transfer" in _panel(bo), what="the summary")
        text = _panel(bo)
        assert "from sup with the transfer" in text
        assert "refund the second payment" in text and "frustrated" in text
        if SHOTS:
            await pilot.pause()
            bo.save_screenshot("console-transfer-summary.svg", path=SHOTS)


async def test_the_llm_summary_goes_with_the_transfer_when_it_checks_out(
    db_path: Path, fake_openai: FakeOpenAI
) -> None:
    cid = _held_by_ana(db_path)
    fake_openai.tool_args = {
        "wants": "a refund of the second Acme payment",
        "tried": "the bot said it was not sure",
        "feeling": "annoyed at repeating themselves",
    }
    llm = LLMConfig(base_url=fake_openai.base_url, api_key="k", model="m", timeout=5)
    sup = TandemApp(db_path, "sup", supervisor=True, interval=0.05, llm=llm)
    async with sup.run_test(size=SIZE) as pilot:
        await _transfer(sup, pilot, cid, "bo")
        await wait_until(pilot, lambda: _transfer_note(db_path, cid), what="the stored transfer")
        note = _transfer_note(db_path, cid)
        assert note is not None
        assert note["summary"]["engine"] == "llm"
        assert note["summary"]["wants"] == "a refund of the second Acme payment"
        assert note["summary"]["reasons"] == ["frustration"]  # the triage's, not the model's
        # The conversation went to bo, who holds it; ana's hand-over note is gone from view.
        with Store(db_path) as s:
            row = s.one("SELECT owner FROM conversations WHERE id = ?", (cid,))
        assert row is not None and row[0] == "bo"

        # A model that invents a figure: the transfer carries the embedded summary instead.
        fake_openai.tool_args = {"wants": "a refund of 120 pounds", "tried": "x", "feeling": "y"}
        sup.pop_screen()
        await _transfer(sup, pilot, cid, "ana")
        await wait_until(
            pilot,
            lambda: (n := _transfer_note(db_path, cid)) is not None and n["id"] != note["id"],
            what="the second transfer",
        )
        second = _transfer_note(db_path, cid)
        assert second is not None and second["summary"]["engine"] == "embedded"
        assert "120" in (second["summary"]["notice"] or "")
        assert "120" not in second["summary"]["wants"]
