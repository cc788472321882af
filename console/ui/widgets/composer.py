"""The reply composer: a text editor, the draft that writes itself into it, and a status line.

The screen owns the replies: it handles :class:`Composer.Sent` by asking the backend to store
the reply (which logs the draft as accepted or edited, with its edit distance) and, on
success, calls :meth:`Composer.sent`; on a refusal, :meth:`Composer.send_failed`. The drafts
come from the backend's :class:`console.backend.DraftClient` (on this machine, or written on
the server); its log writes go through the app's :class:`console.ui.writer.StoreWriter`, off
the event loop, so a locked database never holds up typing. The LLM is handed in, resolved once
at start (``console.config``); the composer never reads the configuration. Drafts (DESIGN.md section 6) come from
:class:`console.assist.service.DraftService`: on :meth:`Composer.on_takeover`, and on
:meth:`Composer.on_customer_message` while the editor is empty or still holds the untouched
draft. A draft is never sent without the agent pressing send.

Streaming follows Textual's ``MarkdownStream``: the draft's fragments go into a pending
buffer and one timer flushes it every ``FLUSH_SECONDS`` with a single
``insert(text, document.end)``, never a UI call per token. The agent's cursor and selection
stay where they are while text streams in (a new draft starts with the cursor at the top, so
the agent reads from the first words while the rest streams in), so keys pressed mid-stream
land where the agent put the cursor; each flush is one undo step.

A draft whose stream ended without a proper finish (the model's token limit, a cut connection)
keeps its text and is marked incomplete: a warning frame, the status line says why and that
f5 redrafts, and ctrl+s on it untouched asks to be pressed again.

Bindings:

| key        | action                                                       |
|------------|--------------------------------------------------------------|
| ctrl+s     | send the text to the customer (stops a draft that is still streaming first) |
| ctrl+enter | send (where the terminal reports it)                         |
| f5         | regenerate the draft                                         |
| f9         | regenerate with an instruction ("shorter", "more formal", free text) |
| f8         | discard the draft                                            |
| f4         | drafts statistics (acceptance, edits, time to first text)    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static, TextArea
from textual.worker import Worker, WorkerState

from console.assist.service import DraftFinished, DraftReset, DraftStarted, DraftText
from console.backend import Backend, DraftClient, StoreError
from console.ui.writer import StoreWriter

if TYPE_CHECKING:
    from console.llm import LLM


# How often buffered draft text reaches the editor: fast enough to read as streaming,
# slow enough that a fast model costs a handful of renders per second, not one per token.
FLUSH_SECONDS = 0.04


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


@dataclass
class DraftState:
    """What the composer knows about the draft in the editor."""

    draft_id: int
    engine: str
    model: str | None
    kb_ids: tuple[str, ...] = ()
    kb_titles: tuple[str, ...] = ()
    first_text_ms: float | None = None
    notice: str | None = None
    streaming: bool = True
    stale: bool = False
    instruction: str | None = None
    incomplete: str | None = None
    """Why the draft stops short (its stream ended without a proper finish)."""


def status_line(state: DraftState | None, *, idle: str = "ctrl+s sends · f5 draft") -> str:
    """The one line under the editor (plain text): engine, timing, sources, warnings first."""
    if state is None:
        return idle
    parts: list[str] = []
    if state.incomplete:
        parts.append(f"⚠ incomplete draft: {state.incomplete} — f5 redrafts")
    if state.stale:
        parts.append("stale: the customer wrote again — f5 regenerates")
    if state.notice:
        parts.append(f"⚠ {state.notice}")
    engine = state.engine if not state.model else f"{state.engine} {state.model}"
    parts.append(f"draft #{state.draft_id} · {engine}")
    parts.append("writing…" if state.streaming else f"first text {_ms(state.first_text_ms)}")
    if state.kb_ids:
        first = f" {state.kb_titles[0]}" if state.kb_titles and state.kb_titles[0] else ""
        parts.append(
            f"sources {state.kb_ids[0]}{first}" + "".join(f", {k}" for k in state.kb_ids[1:])
        )
    return " · ".join(parts)  # the keys are in the footer


class Composer(Widget):
    """A ``TextArea`` for the agent's reply, a draft streaming into it, and a status line.

    Args:
        backend: the console's backend (drafts, the drafts statistics).
        conversation_id: the conversation this composer writes to.
        llm: a ``console.llm.LLM`` for drafts on this machine; ``None``: the embedded engine
            only (a remote backend drafts on the server, whatever this is).
        writer: where the drafts log's writes run (the app's); ``None``: the composer starts
            its own and stops it when it goes.
    """

    DEFAULT_CSS = """
    Composer {
        height: auto;
        max-height: 14;
    }
    Composer > TextArea {
        height: auto;
        min-height: 3;
        max-height: 10;
    }
    Composer > .composer--status {
        height: auto;
        max-height: 2;
        color: $text-muted;
        padding: 0 1;
    }
    Composer > .composer--status.-warning {
        color: $warning;
    }
    Composer > TextArea.-incomplete {
        border: tall $warning;
    }
    """

    BINDINGS = [
        Binding(
            "ctrl+s", "send", "Send", id="composer.send", tooltip="Send the reply to the customer"
        ),
        Binding("ctrl+enter", "send", "Send", show=False, id="composer.send_enter"),
        Binding(
            "f5", "regenerate", "Redraft", id="composer.regenerate", tooltip="Write a new draft"
        ),
        Binding(
            "f9",
            "instruct",
            "Redraft with…",
            id="composer.instruct",
            tooltip="New draft with an instruction: shorter, more formal, warmer…",
        ),
        Binding("f8", "discard", "Discard", id="composer.discard", tooltip="Throw the draft away"),
        Binding(
            "f4",
            "draft_metrics",
            "Draft stats",
            id="composer.metrics",
            tooltip="Acceptance, edits and time to first text of the drafts",
        ),
    ]

    @dataclass
    class Sent(Message):
        """The agent pressed send; the screen posts ``text`` through the store."""

        text: str
        """What the agent wrote (as it is in the editor)."""
        draft_id: int | None
        """The draft this text started from, if any (for the drafts log)."""

    @dataclass
    class DraftUpdated(Message):
        """A draft started, finished, went stale or was discarded (for panels and tests)."""

        draft: DraftState | None

    def __init__(
        self,
        backend: Backend,
        conversation_id: int,
        *,
        llm: LLM | None = None,
        writer: StoreWriter | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.backend = backend
        self.conversation_id = conversation_id
        self.agent = backend.agent
        # The draft the editor's text came from; the screen passes it back with Sent.
        self.draft_id: int | None = None
        self.draft: DraftState | None = None
        self._llm = llm
        self._service: DraftClient | None = None
        self._writer = writer
        self._own_writer = writer is None
        self._sending = False
        self._pending: list[str] = []
        self._inserted = ""  # everything the current draft put into the editor
        self._flusher: Timer | None = None
        self._worker: Worker[None] | None = None
        self._sent_text: str | None = None
        self._run_id = 0
        self._close_after_run = False
        self._send_incomplete = False  # the agent was told the draft stops short; send anyway
        self._frozen_reason = ""

    def compose(self) -> ComposeResult:
        yield TextArea(
            id="composer-input", soft_wrap=True, show_line_numbers=False, tab_behavior="focus"
        )
        yield Static(status_line(None), classes="composer--status", markup=False)

    def on_mount(self) -> None:
        self._flusher = self.set_interval(
            FLUSH_SECONDS, self._flush, pause=True, name="composer-flush"
        )
        if self._llm is not None:
            # The openai package takes most of a second to import; do it off the event loop
            # now, so the first LLM draft does not freeze the console.
            self.run_worker(_import_openai, thread=True, group="composer-warm", exit_on_error=False)

    def on_unmount(self) -> None:
        # The agent left the conversation: an unsent draft counts as discarded. A draft still
        # streaming logs itself when its worker stops, so the connection closes after that.
        self._pending.clear()
        if self.streaming and self._worker is not None:
            self._close_after_run = True
            self._worker.cancel()
            return
        self._leave()

    def _leave(self) -> None:
        self._forget_draft(discard=True)
        if self._service is not None:
            self._service.close()  # queued after the discard above
            self._service = None
        if self._own_writer and self._writer is not None:
            self._writer.close(wait=False)
            self._writer = None

    # --- the parts ----------------------------------------------------------------------

    @property
    def editor(self) -> TextArea:
        """The text area holding the reply."""
        return self.query_one("#composer-input", TextArea)

    @property
    def text(self) -> str:
        """The reply as currently written."""
        return self.editor.text

    @property
    def streaming(self) -> bool:
        """Whether a draft is being written into the editor right now."""
        return self._worker is not None and self._worker.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        )

    @property
    def untouched(self) -> bool:
        """The editor holds nothing, or only the draft exactly as it was written."""
        return self.editor.text.strip() == "" or self.editor.text == self._inserted + "".join(
            self._pending
        )

    @property
    def writer(self) -> StoreWriter:
        """Where the drafts log is written (opened on first use when the app gave none)."""
        if self._writer is None:
            self._writer = StoreWriter()
        return self._writer

    @property
    def service(self) -> DraftClient:
        """The drafts, created on first use; their log writes run on the writer's thread."""
        if self._service is None:
            self._service = self.backend.drafts(self._llm, self.writer)
        return self._service

    def set_status(self, text: str, *, warning: bool = False) -> None:
        """Show the line under the editor (plain text, never markup)."""
        status = self.query_one(".composer--status", Static)
        status.update(text)
        status.set_class(warning, "-warning")

    def _show(self) -> None:
        d = self.draft
        self.set_status(status_line(d), warning=bool(d and (d.stale or d.notice or d.incomplete)))
        editor = self._live_editor()
        if editor is not None:
            # The frame says it too, where the agent is looking: this text stops short.
            editor.set_class(bool(d and d.incomplete), "-incomplete")

    def focus_editor(self) -> None:
        """Put the keyboard focus in the editor."""
        self.editor.focus()

    def insert_text(self, text: str) -> None:
        """Put ``text`` at the cursor, replacing the selection if there is one (one undo step).

        The agent's own words around it stay; a space (a blank line for text of several
        lines) keeps it from running into a word on the same line. The cursor ends after it.
        Once the editor holds more than the draft, a new customer message no longer replaces it.
        """
        editor = self.editor
        start, end = sorted(editor.selection)
        before = editor.get_text_range((start[0], 0), start)
        after = editor.get_text_range(end, (end[0], len(editor.document[end[0]])))
        gap = "\n\n" if "\n" in text else " "
        if before and not before[-1].isspace():
            text = gap + text
        if after and not after[0].isspace():
            text = text + gap
        editor.replace(text, start, end, maintain_selection_offset=False)

    # --- drafts -------------------------------------------------------------------------

    def start_draft(self, instruction: str | None = None) -> None:
        """Replace the editor's text with a new draft (the old draft, if any, is discarded)."""
        if self.frozen:
            return  # the conversation is someone else's now
        self._stop_stream()
        self._forget_draft(discard=True)
        self._send_incomplete = False
        self.editor.remove_class("-incomplete")
        self.editor.clear()
        self._inserted = ""
        self._pending.clear()
        self.set_status("drafting…")
        self._worker = self.run_worker(
            self._run(instruction),
            group="composer-draft",
            exclusive=True,
            exit_on_error=False,
            name="draft",
        )

    async def _run(self, instruction: str | None) -> None:
        assert self._flusher is not None
        self._run_id += 1
        run_id = self._run_id
        self._flusher.resume()
        try:
            async for event in self.service.draft(self.conversation_id, instruction=instruction):
                if isinstance(event, DraftText):
                    self._pending.append(event.text)
                elif isinstance(event, DraftStarted):
                    self.draft_id = event.draft_id
                    self.draft = DraftState(
                        event.draft_id,
                        event.engine,
                        event.model,
                        event.kb_ids,
                        instruction=instruction,
                    )
                    self._show()
                    self.post_message(self.DraftUpdated(self.draft))
                elif isinstance(event, DraftReset):
                    self._reset(event)
                elif isinstance(event, DraftFinished):
                    self._flush()
                    d = self.draft
                    if d is not None:
                        d.engine, d.model, d.kb_ids = event.engine, event.model, event.kb_ids
                        d.kb_titles = event.kb_titles
                        d.first_text_ms, d.stale = event.first_text_ms, event.stale
                        d.notice = event.notice
                        d.incomplete = event.incomplete
                        d.streaming = False
                    self._show()
                    self.post_message(self.DraftUpdated(self.draft))
        except StoreError as exc:
            self.set_status(f"no draft: {exc}", warning=True)
        finally:
            if self._close_after_run:
                self._leave()
            # A cancelled run finishes after its successor started: leave the successor alone.
            elif run_id == self._run_id:
                self._flush()
                self._flusher.pause()
                if self.draft is not None:
                    self.draft.streaming = False

    def _live_editor(self) -> TextArea | None:
        """The editor, unless it is being taken down (the agent left while a draft streamed)."""
        try:
            editor = self.editor
        except NoMatches:
            return None
        # A removed TextArea has dropped its component styles: an insert would crash its render.
        return editor if editor.is_attached else None

    def _flush(self) -> None:
        """Move the buffered draft text into the editor with one insert.

        The agent's cursor and selection stay exactly where they were: Textual's own offset
        keeping carries a cursor on the last line along when the new text holds a line break,
        so what the agent typed next landed inside the draft. The text goes in after
        everything, so the saved locations still hold and are put back in the same frame. A
        new draft is read from its first words, the cursor at the top.
        """
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        editor = self._live_editor()
        if editor is None:
            return
        kept = editor.selection
        editor.insert(text, editor.document.end, maintain_selection_offset=False)
        editor.selection = kept
        self._inserted += text

    def _reset(self, event: DraftReset) -> None:
        # The LLM failed half-way: its words go, unless the agent already worked on them.
        self._pending.clear()
        # With the editor gone (the agent left) nothing is shown, but the draft's record still changes.
        editor = self._live_editor()
        if editor is not None and editor.text == self._inserted:
            editor.clear()
            self._inserted = ""
        elif editor is not None:
            self._flush()
            editor.insert("\n\n", editor.document.end)
            self._inserted = editor.text
        if self.draft is not None:
            self.draft.notice = event.notice
            self.draft.engine, self.draft.model = event.engine, None
        self._show()

    def _stop_stream(self) -> None:
        if self._worker is not None and self.streaming:
            self._worker.cancel()
        self._flush()
        if self._flusher is not None:
            self._flusher.pause()
        self._worker = None

    def _forget_draft(self, *, discard: bool) -> None:
        draft_id, service = self.draft_id, self._service
        if discard and draft_id is not None and service is not None:
            service.discard_soon(draft_id)
        self.draft_id = None
        self.draft = None

    # --- actions ------------------------------------------------------------------------

    def action_send(self) -> None:
        if self.frozen:
            # Not this agent's conversation any more: nothing is sent, and they hear why.
            self.notify(self._frozen_reason, severity="warning", markup=False)
            return
        if self.streaming:
            # Never send half a draft by accident: stop it, let the agent read, then send.
            self._stop_stream()
            if self.draft is not None:
                self.draft.streaming = False
            self.set_status("draft stopped · read it, then ctrl+s sends")
            return
        if self._sending:
            return  # the reply before is still on its way to the store
        text = self.editor.text
        if not text.strip():
            self.set_status("nothing to send")
            return
        d = self.draft
        if d is not None and d.incomplete and self.untouched and not self._send_incomplete:
            # A draft that stops short is sent only on purpose: once told, a second ctrl+s does.
            self._send_incomplete = True
            self.set_status(
                f"⚠ this draft stops short ({d.incomplete}): ctrl+s again sends it as it is"
                " · f5 redrafts",
                warning=True,
            )
            return
        self._sent_text = text
        self._sending = True
        # Until the store has it (a lock held elsewhere can take seconds) the text stays as
        # sent: what the editor holds afterwards is never half-sent.
        self.editor.read_only = True
        self.set_status("sending…")
        self.post_message(self.Sent(text, self.draft_id))

    def action_regenerate(self) -> None:
        self.start_draft()

    def action_instruct(self) -> None:
        from console.ui.widgets.prompt import PromptScreen

        def chosen(instruction: str | None) -> None:
            if instruction:
                self.start_draft(instruction)
            self.focus_editor()

        self.app.push_screen(
            PromptScreen(
                "How should the new draft differ?",
                hint="e.g. shorter · more formal · warmer · no apologies · anything else (LLM)",
                placeholder="shorter",
            ),
            chosen,
        )

    def action_draft_metrics(self) -> None:
        from console.ui.widgets.draft_metrics import DraftMetricsScreen

        self.app.push_screen(DraftMetricsScreen(self.backend))

    def action_discard(self) -> None:
        if self.draft_id is None and not self.streaming:
            self.set_status("no draft to discard · f5 writes one")
            return
        self._stop_stream()
        self._forget_draft(discard=True)
        self.editor.remove_class("-incomplete")
        self.editor.clear()
        self._inserted = ""
        self.set_status("draft discarded · f5 writes a new one")
        self.post_message(self.DraftUpdated(None))

    # --- called by the screen -----------------------------------------------------------

    @property
    def frozen(self) -> bool:
        """The conversation was taken from this agent: the reply stays in sight, read only."""
        return self.has_class("-frozen")

    def freeze(self, reason: str) -> None:
        """Someone else holds the conversation now: stop any draft, keep the text, refuse edits.

        Args:
            reason: one line, said again if the agent tries to send ("taken by sam").
        """
        self._stop_stream()
        if self.draft is not None:
            self.draft.streaming = False
        self._frozen_reason = reason
        self.editor.read_only = True
        self.add_class("-frozen")
        self.set_status(f"{reason} · your reply is read only, nothing is sent", warning=True)

    def thaw(self) -> None:
        """The conversation is this agent's again."""
        self.remove_class("-frozen")
        self.editor.read_only = self._sending
        self._show()

    def on_takeover(self) -> None:
        """The screen claimed the conversation: the editor is ours, and a draft starts."""
        if self.streaming or (self.draft_id is not None and not self.untouched):
            return
        if self.editor.text.strip() and self.draft_id is None:
            self.set_status("you own this conversation · ctrl+s sends · f5 drafts a reply")
            return
        self.start_draft()

    def on_customer_message(self, message_id: int) -> None:
        """A new customer message arrived while we own the conversation."""
        del message_id  # the store knows which message is newest
        if self.streaming or self.draft_id is not None:
            self.run_worker(self._customer_wrote(), group="composer-log")
        elif not self.editor.text.strip():
            self.start_draft()

    async def _customer_wrote(self) -> None:
        run_id, service, cid = self._run_id, self.service, self.conversation_id
        try:
            marked = await service.mark_stale(cid)
        except StoreError:
            marked = True
        if run_id != self._run_id:
            return  # a new draft started meanwhile, from the newest message
        if self.streaming or self.draft_id is not None:
            if not (marked or self.streaming):
                return
            if self.untouched:
                self.start_draft()  # the agent has not touched it: just write the new one
                return
            if self.draft is not None:
                self.draft.stale = True
            self._show()
            self.post_message(self.DraftUpdated(self.draft))
        elif not self.editor.text.strip():
            self.start_draft()

    def sent(self, message_id: int, draft_outcome: str | None = None) -> None:
        """The reply was stored as ``message_id`` (its draft logged as ``draft_outcome``):
        empty the editor."""
        self.clear()
        logged = f" · draft {draft_outcome}" if draft_outcome else ""
        self.set_status(f"sent (message {message_id}){logged} · f5 drafts the next reply")
        self.post_message(self.DraftUpdated(None))

    def send_failed(self) -> None:
        """The screen could not store the reply: the text stays, and ctrl+s tries again."""
        self._sending = False
        self._sent_text = None
        self.editor.read_only = self.frozen
        self._show()

    def clear(self) -> None:
        """Empty the editor and forget the draft (without logging a decision)."""
        self._stop_stream()
        self._send_incomplete = False
        self.editor.remove_class("-incomplete")
        self.editor.read_only = self.frozen
        self.editor.clear()
        self._inserted = ""
        self._pending.clear()
        self._sent_text = None
        self._sending = False
        self.draft_id = None
        self.draft = None


def _import_openai() -> None:
    import openai  # noqa: F401  (warms the import cache for console.llm)
