"""The web chat in a real browser (Debian's Chromium driven by Playwright) against a real
``tandem serve``: what a customer sees and does, by keyboard where a keyboard user would.

One browser for the module. Nothing is downloaded: Playwright drives /usr/bin/chromium (.ci/run
installs it). Set TANDEM_SCREENSHOTS=DIR to save the README's screenshots along the way.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from waiting import wait_until

from store import Store
from store import lifecycle as lc

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1100, "height": 760}
PHONE = {"width": 390, "height": 780}
SHOTS = os.environ.get("TANDEM_SCREENSHOTS")
WAIT_MS = 15_000

if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium", pytrace=False)
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hub:
    """A ``tandem serve`` process with its channel API on ``url``."""

    db: Path
    port: int
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "TANDEM_DB", "TANDEM_CONFIG")
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "console.cli",
                "serve",
                "--db",
                str(self.db),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--log-interval",
                "0",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(self._listening, what=f"tandem serve listening on {self.port}")

    def _listening(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self._stderr()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def _stderr(self) -> str:
        if self.process is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    running = Hub(tmp_path_factory.mktemp("webchat") / "tandem.db", _free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, hub: Hub) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.goto(hub.url + "/")
    yield tab
    context.close()


def _shot(page: Page, name: str) -> None:
    """Save the README's screenshots at desktop and phone width (only with TANDEM_SCREENSHOTS)."""
    if not SHOTS:
        return
    out = Path(SHOTS)
    out.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.locator("#log").evaluate("el => el.scrollTop = el.scrollHeight")
        page.screenshot(path=str(out / f"webchat-{name}-{label}.png"))
    page.set_viewport_size(DESKTOP)


def _conversation_id(page: Page) -> int:
    session = page.evaluate("JSON.parse(localStorage.getItem('tandem-chat'))")
    return int(session["id"])


def _send(page: Page, text: str) -> None:
    """Type into the message box and press Enter (the box has the focus after each send)."""
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def test_a_whole_chat_by_keyboard_from_greeting_to_rating_and_a_new_chat(
    page: Page, hub: Hub
) -> None:
    p = page
    # Start: the name field has the focus and a visible label; Enter starts the chat.
    expect(p.get_by_label("Your first name")).to_be_focused()
    p.keyboard.type("Maya")
    p.keyboard.press("Enter")
    log = p.get_by_role("log", name="Conversation")
    # The assistant greets at once, with the time; the message box has the focus.
    greeting = log.locator(".msg.bot").first
    expect(greeting).to_contain_text("Hi Maya!")
    expect(greeting.locator("time")).to_have_text(re.compile(r"\d{1,2}[:.]\d{2}"))
    expect(p.get_by_label("Your message")).to_be_focused()
    cid = _conversation_id(p)

    # A question with two answers: the bot asks which, with buttons to pick one.
    _send(p, "refund")
    choices = p.get_by_role("group", name="Suggested replies")
    expect(choices.get_by_role("button")).to_have_count(3)
    expect(log.locator(".msg.customer")).to_have_count(1)
    expect(log.locator(".msg.customer[data-id]")).to_have_count(1)  # stored, confirmed
    _shot(p, "choices")
    # By keyboard: the buttons sit just above the message box, Shift+Tab reaches them.
    for _ in range(3):
        p.keyboard.press("Shift+Tab")
    expect(choices.get_by_role("button", name="Refunds from shops")).to_be_focused()
    p.keyboard.press("Enter")
    expect(choices).to_be_hidden()
    expect(log.locator(".msg.customer").last).to_have_text(re.compile("Refunds from shops"))
    expect(log.locator(".msg.bot").last).to_contain_text("working day")

    # Asking for a person: the hub says a person is coming; the header says so too.
    p.get_by_label("Your message").focus()
    _send(p, "I'd like to talk to a person please")
    expect(log.locator(".system").last).to_contain_text("person")
    expect(p.locator("#who")).to_contain_text("Waiting for a person")

    # A person joins (claims it in the console): the customer sees their name, then their words.
    with Store(hub.db) as store:
        wait_until(
            lambda: (
                store.one("SELECT state FROM conversations WHERE id = ?", (cid,))[0] == "waiting"
            ),
            what="the conversation in the queue",
        )
        lc.claim(store, cid, "ana.lopez")
        lc.agent_reply(
            store, cid, "ana.lopez", "Hi Maya, I'm Ana. I've found your refund: it's on its way."
        )
    expect(log.get_by_text("Ana joined the chat")).to_be_visible()
    expect(p.locator("#who")).to_contain_text("Ana")
    agent = log.locator(".msg.agent").last
    expect(agent).to_contain_text("it's on its way")
    expect(agent.locator(".who")).to_have_text("Ana")
    _shot(p, "agent")

    # Ana closes it: the chat says so and asks for a rating, answered by keyboard.
    with Store(hub.db) as store:
        lc.resolve(store, cid, by="ana.lopez")
    expect(log.get_by_text("This chat is closed")).to_be_visible()
    rating = p.get_by_role("group", name="How happy are you with the help you got?")
    expect(rating).to_be_visible()
    _shot(p, "closed")
    p.get_by_label("4 out of 5").focus()
    p.keyboard.press("Space")
    p.keyboard.press("ArrowRight")  # a radio group moves by arrows: 5
    p.keyboard.press("Tab")
    expect(p.get_by_label(re.compile("Anything you'd like to tell us"))).to_be_focused()
    p.keyboard.type("Quick & kind <3")
    p.keyboard.press("Tab")
    p.keyboard.press("Enter")
    expect(p.get_by_text("Thank you for your rating.")).to_be_focused()
    with Store(hub.db) as store:
        row = store.one(
            "SELECT score, comment, agent FROM ratings WHERE conversation_id = ?", (cid,)
        )
    assert tuple(row) == (5, "Quick & kind <3", "ana.lopez")

    # Writing again reopens it: back to Ana (she is online), never to an assistant that
    # starts from nothing; the rating card goes away.
    p.get_by_label("Your message").focus()
    _send(p, "Sorry, one more thing about that refund")
    expect(log.get_by_text("You reopened this chat")).to_be_visible()
    expect(log.locator(".system").last).to_contain_text(
        "Welcome back. Ana, who helped you before, has your conversation again"
    )
    expect(p.locator("#who")).to_contain_text("Ana")
    expect(p.locator("#closed")).to_be_hidden()
    with Store(hub.db) as store:
        assert store.one("SELECT state, owner FROM conversations WHERE id = ?", (cid,))[:] == (
            "human",
            "ana.lopez",
        )

    # Ana answers and closes it again: a new closing, rated afresh.
    with Store(hub.db) as store:
        lc.agent_reply(store, cid, "ana.lopez", "Done: it won't show up again.")
        lc.resolve(store, cid, by="ana.lopez")
    expect(p.locator("#closed")).to_be_visible()
    expect(p.get_by_role("radio", name="5 out of 5, very happy")).not_to_be_checked()

    # A new chat: the start form again, then a fresh greeting in a new conversation.
    p.get_by_role("button", name="Start a new chat").click()
    expect(p.get_by_label("Your first name")).to_be_focused()
    expect(p.get_by_label("Your first name")).to_have_value("Maya")
    p.keyboard.press("Enter")
    expect(log.locator(".msg")).to_have_count(1)
    expect(log.locator(".msg.bot")).to_contain_text("Hi Maya!")
    assert _conversation_id(p) != cid


def test_customer_text_is_shown_as_text_never_as_html(page: Page) -> None:
    p = page
    p.get_by_label("Your first name").fill("Kim")
    p.get_by_role("button", name="Start chat").click()
    p.get_by_label("Your message").fill('<img src=x onerror="document.title=1"><b>bold</b>')
    p.get_by_role("button", name="Send").click()
    mine = p.locator(".msg.customer").last
    expect(mine.locator("p")).to_have_text('<img src=x onerror="document.title=1"><b>bold</b>')
    expect(mine.locator("img, b")).to_have_count(0)
    # Whatever the hub makes of it (an answer, or a person), it answered: and ran nothing.
    expect(p.locator(".msg.bot, .system")).to_have_count(2)
    assert p.evaluate("document.title") != "1"


def test_a_send_that_fails_stays_unsent_with_a_retry(page: Page, hub: Hub) -> None:
    p = page
    p.get_by_label("Your first name").fill("Lee")
    p.keyboard.press("Enter")
    expect(p.locator(".msg.bot")).to_have_count(1)
    hub.stop()
    try:
        p.get_by_label("Your message").fill("How do I freeze my card?")
        p.keyboard.press("Enter")
        mine = p.locator(".msg.customer").last
        expect(mine).to_have_class(re.compile(r"\bfailed\b"))
        expect(mine.get_by_role("alert")).to_contain_text("Not sent")
        retry = mine.get_by_role("button", name=re.compile("Retry sending"))
        expect(retry).to_be_visible()
        _shot(p, "unsent")
    finally:
        hub.start()
    retry.click()
    expect(mine).not_to_have_class(re.compile(r"\bfailed\b"))
    expect(mine.locator(".unsent")).to_have_count(0)
    # Stored once, answered once, and the stream (reconnected by itself) shows the answer.
    expect(p.locator(".msg.bot").last).to_contain_text(re.compile("[Ff]reez"))
    expect(p.locator(".msg.customer")).to_have_count(1)
    with Store(hub.db) as store:
        cid = _conversation_id(p)
        count = store.one(
            "SELECT count(*) FROM messages WHERE conversation_id = ? AND role = 'customer'",
            (cid,),
        )[0]
    assert count == 1


def test_a_message_not_sent_before_a_reload_comes_back_unsent(page: Page, hub: Hub) -> None:
    # By hand: offline, a message stays marked unsent; reload the tab once back online and it
    # was gone, with nothing to say it never reached us.
    p = page
    p.get_by_label("Your first name").fill("Rae")
    p.keyboard.press("Enter")
    expect(p.locator(".msg.bot")).to_have_count(1)
    hub.stop()
    try:
        p.get_by_label("Your message").fill("Can I get my PIN reminder?")
        p.keyboard.press("Enter")
        expect(p.locator(".msg.customer").last).to_have_class(re.compile(r"\bfailed\b"))
    finally:
        hub.start()
    p.reload()
    expect(p.locator(".msg.bot")).to_have_count(1)
    mine = p.locator(".msg.customer")
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("Can I get my PIN reminder?")
    expect(mine.get_by_role("alert")).to_contain_text("Not sent")
    mine.get_by_role("button", name=re.compile("Retry sending")).click()
    expect(mine).not_to_have_class(re.compile(r"\bfailed\b"))
    expect(p.locator(".msg.bot")).to_have_count(2)
    # Sent once; another reload shows it once, as sent, and nothing unsent is left.
    p.reload()
    expect(p.locator(".msg.bot")).to_have_count(2)
    expect(p.locator(".msg.customer")).to_have_count(1)
    expect(p.locator(".msg.failed")).to_have_count(0)
    with Store(hub.db) as store:
        count = store.one(
            "SELECT count(*) FROM messages WHERE conversation_id = ? AND role = 'customer'",
            (_conversation_id(p),),
        )[0]
    assert count == 1


def test_an_unknown_session_starts_cleanly(page: Page, hub: Hub) -> None:
    p = page
    # A session left from another database (or one that expired): the hub does not know it.
    p.evaluate(
        "localStorage.setItem('tandem-chat', JSON.stringify("
        "{id: '987654', token: 'not-a-token', name: 'Sam'}))"
    )
    p.reload()
    expect(p.get_by_role("alert")).to_contain_text("couldn't find your previous chat")
    expect(p.get_by_label("Your first name")).to_be_focused()
    expect(p.get_by_label("Your first name")).to_have_value("Sam")
    expect(p.locator("#status")).not_to_have_text("Reconnecting…")
    p.keyboard.press("Enter")
    expect(p.locator(".msg.bot")).to_contain_text("Hi Sam!")
    assert _conversation_id(p) != 987654
