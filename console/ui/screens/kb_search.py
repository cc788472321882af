"""Knowledge-base search as a modal: a query, the matching articles, and the selected one.

An agent opens it with ``ctrl+k`` in a conversation (the query starts as the customer's last
message, so the first results already fit) or from the wall's command palette. Results are
ranked by the knowledge base's one ranker (:mod:`console.kb.rank`: FTS5 bm25, then how much
of the question each article covers), over the same pool as drafts, so the article a draft
quotes for a question is the one this screen shows first. The search turns any text into a
safe query, so quotes, ``*`` or ``NEAR(`` typed by the agent are just characters. It runs on
the event loop with the app's own connection: one indexed read of well under a millisecond
(the ranker's index of the articles is built once and rebuilt when they change), and a short
debounce keeps it to one per pause in typing.

The screen never writes anything. ``enter`` dismisses with a :class:`KbPick` carrying the
article's customer-facing answer (``ctrl+y``: just its id, as a reference); the opener puts it
into the composer. Opened with ``insert_blocked`` (a conversation the agent does not own, or
the wall), it searches and previews, and says why it cannot insert instead.

Article text is ours, but it is drawn as data all the same: plain ``Text`` and
``markup=False``, control characters made visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from console.backend import Backend, KbArticle, KbHit, StoreError, terms
from console.kb import split_body
from console.ui.model import safe_text

# Long enough to skip the searches between keystrokes, short enough to feel live.
DEBOUNCE_SECONDS = 0.12
RESULT_LIMIT = 20  # the ranker's pool (console.kb.rank.SEARCH_POOL)
# A customer's message can be long; the query needs its words, not all of it.
QUERY_CHARS = 240


def customer_answer(article: KbArticle) -> str:
    """The part of ``article`` written for customers: summary, facts as bullets, numbered steps.

    Headings and anything outside the summary, bullets and steps (the KB format in
    :mod:`console.kb`) stay out; an article in no known shape is used as written.
    """
    parsed = split_body(article)
    blocks: list[str] = []
    if parsed.summary:
        blocks.append(parsed.summary)
    if parsed.facts:
        blocks.append("\n".join(f"- {fact}" for fact in parsed.facts))
    if parsed.steps:
        blocks.append("\n".join(f"{n}. {step}" for n, step in enumerate(parsed.steps, 1)))
    return "\n\n".join(blocks) if blocks else article.body.strip()


def query_from(text: str) -> str:
    """A one-line search query from a customer's message (control characters made inert)."""
    line = safe_text(text, one_line=True)
    return line[:QUERY_CHARS].rsplit(" ", 1)[0] if len(line) > QUERY_CHARS else line


@dataclass(frozen=True, slots=True)
class KbPick:
    """What the agent chose: the text to insert into the composer, and where it came from."""

    article_id: str
    text: str
    kind: Literal["answer", "reference"]


class ResultList(OptionList):
    """The matching articles; never focused, so typing always goes to the query."""

    can_focus = False


class ArticlePreview(VerticalScroll):
    """The selected article; scrolls with the mouse or page up / page down."""

    can_focus = False


class KbSearchScreen(ModalScreen[KbPick | None]):
    """Search the knowledge base, preview an article, pick its answer or its id.

    Args:
        backend: the console's backend (the search runs on a worker thread).
        query: the starting query (e.g. the customer's last message), all selected so that
            typing replaces it.
        subject: who the search is for, shown in the title ("Maya #12").
        insert_blocked: why nothing can be inserted here (watching, not owning; the wall),
            or ``None`` when ``enter`` and ``ctrl+y`` pick.
    """

    CSS_PATH = "kb_search.tcss"
    AUTO_FOCUS = "#kb-query"

    BINDINGS = [
        # Priority: the query box would otherwise take enter as its own submit.
        Binding(
            "enter",
            "pick('answer')",
            "Insert answer",
            priority=True,
            id="kb_search.insert",
            tooltip="Insert the article's answer into the reply at the cursor",
        ),
        Binding(
            "ctrl+y",
            "pick('reference')",
            "Insert id",
            priority=True,
            id="kb_search.reference",
            tooltip="Insert the article's id into the reply, as a reference",
        ),
        Binding("escape", "close", "Close", id="kb_search.close"),
        Binding("up", "move(-1)", "Previous", show=False),
        Binding("down", "move(1)", "Next", show=False),
        Binding("pageup", "preview_page(-1)", "Scroll article up", show=False),
        Binding("pagedown", "preview_page(1)", "Scroll article down", show=False),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        query: str = "",
        subject: str = "",
        insert_blocked: str | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.initial_query = query_from(query)
        self.subject = subject
        self.insert_blocked = insert_blocked
        self.hits: list[KbHit] = []
        self.searched: str | None = None
        self._debounce: Timer | None = None
        self.answered: str | None = None
        """The query whose results are shown (``searched`` may still be on its way)."""

    def compose(self) -> ComposeResult:
        title = "Knowledge base" + (
            f" · for {safe_text(self.subject, one_line=True)}" if self.subject else ""
        )
        with Vertical(id="kb-dialog"):
            yield Static(title, id="kb-title", markup=False)
            yield Input(
                self.initial_query,
                placeholder="words to look for: card stolen, refund, pin…",
                id="kb-query",
                select_on_focus=True,
            )
            yield Static("", id="kb-status", markup=False)
            with Horizontal(id="kb-body"):
                yield ResultList(id="kb-results", markup=False)
                with ArticlePreview(id="kb-preview"):
                    yield Static("", id="kb-article", markup=False)
            if self.insert_blocked:
                yield Static(self.insert_blocked, id="kb-blocked", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.run_search()

    # --- searching ----------------------------------------------------------------------

    @on(Input.Changed, "#kb-query")
    def _query_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(
            DEBOUNCE_SECONDS, self.run_search, name="kb-search-debounce"
        )

    def run_search(self) -> None:
        """Search for the query as it is now and show the results, best first."""
        self._debounce = None
        query = self.query_one("#kb-query", Input).value
        if query == self.searched:
            return
        self.searched = query
        self._search(query)

    @work(thread=True, exclusive=True, group="kb-search", exit_on_error=False)
    def _search(self, query: str) -> None:
        # Off the event loop: the ranker's first build, or the network, takes a moment.
        try:
            hits = self.backend.kb_search(query, RESULT_LIMIT)
        except StoreError as exc:
            self.app.call_from_thread(self._searched, query, [], str(exc))
            return
        self.app.call_from_thread(self._searched, query, hits, None)

    def _searched(self, query: str, hits: list[KbHit], error: str | None) -> None:
        if query != self.searched:
            return  # the agent typed on: a newer search is on its way
        self.hits = hits
        self.answered = query
        if error is not None:
            self._status(f"search failed: {error}")
            self._show_results()
            return
        words = terms(query)
        if not words:
            self._status("no articles: type a few words (punctuation and little words are ignored)")
        elif not self.hits:
            self._status(f"no articles match {', '.join(words)}")
        else:
            n = len(self.hits)
            self._status(
                f"{n} article{'s' if n != 1 else ''} · best first · words: {', '.join(words)}"
            )
        self._show_results()

    def _status(self, text: str) -> None:
        self.query_one("#kb-status", Static).update(text)

    def _show_results(self) -> None:
        results = self.query_one(ResultList)
        options = []
        for hit in self.hits:
            prompt = Text(no_wrap=False)
            prompt.append(safe_text(hit.id, one_line=True), style="bold")
            prompt.append("  " + safe_text(hit.title, one_line=True))
            options.append(Option(prompt, id=hit.id))
        results.set_options(options)
        if options:
            results.highlighted = 0
        self._preview()

    @on(OptionList.OptionHighlighted, "#kb-results")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._preview()

    @property
    def selected(self) -> KbHit | None:
        """The highlighted article, if any."""
        index = self.query_one(ResultList).highlighted
        if index is None or not 0 <= index < len(self.hits):
            return None
        return self.hits[index]

    def _preview(self) -> None:
        hit = self.selected
        out = Text()
        if hit is None:
            out.append("Nothing to show.", style="dim")
        else:
            out.append(safe_text(hit.title, one_line=True) + "\n", style="bold")
            out.append(safe_text(hit.id, one_line=True), style="bold dim")
            if hit.tags:
                out.append(" · " + safe_text(hit.tags, one_line=True), style="dim")
            out.append("\n\n")
            out.append(safe_text(hit.body.strip()))
        self.query_one("#kb-article", Static).update(out)
        self.query_one(ArticlePreview).scroll_home(animate=False)

    # --- keys ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pick" and self.insert_blocked:
            # Shown dimmed; enter then reaches the query box, whose submit says why.
            return None
        return True

    def action_move(self, delta: int) -> None:
        results = self.query_one(ResultList)
        if not self.hits:
            return
        index = results.highlighted if results.highlighted is not None else 0
        results.highlighted = max(0, min(len(self.hits) - 1, index + delta))

    def action_preview_page(self, direction: int) -> None:
        preview = self.query_one(ArticlePreview)
        if direction < 0:
            preview.scroll_page_up(animate=False)
        else:
            preview.scroll_page_down(animate=False)

    def action_pick(self, kind: Literal["answer", "reference"]) -> None:
        if self._debounce is not None:
            # Enter right after typing: pick from the results of what was typed.
            self._debounce.stop()
            self.run_search()
        hit = self.selected
        if hit is None:
            self._status("no article selected: type words to search")
            return
        article = KbArticle(hit.id, hit.title, hit.body, hit.tags)
        text = customer_answer(article) if kind == "answer" else hit.id
        self.dismiss(KbPick(hit.id, text, kind))

    @on(Input.Submitted, "#kb-query")
    def _submitted(self, event: Input.Submitted) -> None:
        # Only reached while picking is disabled (the enter binding has priority otherwise).
        event.stop()
        if self.insert_blocked:
            self.notify(self.insert_blocked, severity="warning", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
