"""One conversation: transcript, customer context, composer; take over, reply, hand back.

The reader thread loads the transcript when the screen asks to watch it and then sends only
new messages. Every write (take over, reply, note, hand back, resolve) goes through the app's
writer thread (``console.ui.writer``), so a database locked by another process delays the
write, never the keys; the outcome comes back as a past-tense message (``ReplySent``,
``TandemApp.Claimed``, ``TandemApp.Moved``...) and the refusal (``taken by ana``) is shown then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from console.backend import InvalidInput, StoreError, terms
from console.ui.commands import ScreenCommands
from console.ui.feed import TranscriptChanged
from console.ui.model import (
    MASKED_TEXT,
    is_whisper,
    language_name,
    llm_annotation,
    masked,
    reason_words,
    safe_text,
    status_words,
    viewer_names,
)
from console.ui.widgets.composer import Composer
from console.ui.widgets.tile import BADGE_STYLE

if TYPE_CHECKING:
    from console.assist.summary import HandoverSummary
    from console.ui.app import TandemApp
    from console.ui.screens.kb_search import KbPick

# The DOM holds at most this many messages; older ones are dropped from the top.
MAX_MOUNTED = 300
# How often an open conversation says "still viewing" (store.oversight.VIEW_TTL_S forgives two
# missed beats).
VIEW_RENEW_SECONDS = 30.0


def message_text(msg: dict[str, Any], agent: str, *, hidden: bool = False) -> Text:
    """One transcript entry as plain ``Text``: a header line, then the text, literally.

    Args:
        hidden: show that abusive text is there, not the text (see ``console.ui.model.masked``).
    """
    role = msg["role"]
    who = {"customer": "customer", "bot": "bot", "system": "system"}.get(role)
    if role == "agent":
        who = (
            "you"
            if msg.get("author") == agent
            else safe_text(msg.get("author") or "agent", one_line=True)
        )
    elif role == "note" and is_whisper(msg):
        to = (msg.get("meta") or {}).get("to")
        who = (
            f"whisper from {safe_text(msg.get('author') or '?', one_line=True)} to "
            + ("you" if to == agent else safe_text(str(to or "?"), one_line=True))
            + " (the customer does not see it)"
        )
    elif role == "note":
        who = f"note by {safe_text(msg.get('author') or '?', one_line=True)} (internal)"
    stamp = time.strftime("%H:%M:%S", time.localtime(msg["created_at"]))
    out = Text(no_wrap=False)
    out.append(f"{who}", style="bold")
    out.append(f"  {stamp}", style="dim")
    if msg.get("level") and msg["level"] != "calm":
        out.append(f"  {msg['level']}", style=BADGE_STYLE.get(msg["level"], ""))
        words = reason_words(msg.get("reasons") or [])
        if words:
            out.append(" " + " · ".join(words), style="dim")
    kb = (msg.get("meta") or {}).get("kb")
    if role == "bot" and kb:
        out.append("  used " + ", ".join(safe_text(str(k), one_line=True) for k in kb), style="dim")
    out.append("\n")
    if hidden:
        out.append(MASKED_TEXT, style="italic yellow")
        return out
    out.append(safe_text(msg["text"]))
    note = llm_annotation(msg.get("meta")) if role in ("bot", "system") else None
    if note is not None:
        why, unused = note
        if why:
            out.append(f"\n⚠ {why}", style="yellow")
        if unused:
            clipped = unused if len(unused) <= 240 else unused[:239] + "…"
            out.append(f"\n  the model wrote (not sent): {clipped}", style="dim italic")
    return out


class ConversationScreen(Screen[None]):
    """A conversation's transcript with its context; the composer while the agent owns it."""

    CSS_PATH = "conversation.tcss"
    COMMANDS = {ScreenCommands}
    AUTO_FOCUS = ""  # the composer is focused on takeover; watching, keys go to the bindings

    BINDINGS = [
        Binding("escape", "back", "Back", id="conversation.back", tooltip="Return to the wall"),
        Binding("ctrl+t", "take_over", "Take over", id="conversation.take_over"),
        Binding(
            "ctrl+g",
            "hand_back",
            "Hand back",
            id="conversation.hand_back",
            tooltip="Return the conversation to the bot",
        ),
        Binding("ctrl+r", "resolve", "Resolve", id="conversation.resolve"),
        Binding(
            "ctrl+n",
            "note",
            "Note",
            id="conversation.note",
            tooltip="Internal note, never shown to the customer",
        ),
        # v reads where the agent is not typing; ctrl+o also from the composer (v types a v
        # there; its editor selects with f6 and f7, the composer has f4, f5, f8 and f9).
        Binding(
            "v,ctrl+o",
            "reveal",
            "Reveal",
            id="conversation.reveal",
            tooltip="Show the newest hidden abusive message (recorded; once per press)",
        ),
        Binding(
            "f12",
            "final_notice",
            "Final notice",
            id="conversation.final_notice",
            tooltip="Supervisors: an abusive customer warned before gets the final notice; closed",
        ),
        # Live oversight, for supervisors watching another agent's conversation.
        Binding(
            "w",
            "whisper",
            "Whisper",
            id="conversation.whisper",
            tooltip="Supervisors: a note only the agent holding it sees, highlighted at once",
        ),
        Binding(
            "B",
            "barge",
            "Barge in",
            id="conversation.barge",
            tooltip="Supervisors: take this conversation over from the agent holding it",
        ),
        Binding(
            "f6",
            "earlier",
            "Earlier",
            id="conversation.earlier",
            tooltip="Load the 100 messages before the oldest one shown",
        ),
        Binding(
            "f3",
            "toggle_context",
            "Context",
            id="conversation.context",
            tooltip="Show or hide the customer context (hidden by default below 100 columns)",
        ),
        # Priority: the composer's editor binds ctrl+k (delete to the end of the line) itself.
        Binding(
            "ctrl+k",
            "kb_search",
            "Knowledge base",
            priority=True,
            id="conversation.kb_search",
            tooltip="Search the knowledge base and insert an article's answer into the reply",
        ),
    ]

    @dataclass
    class ReplySent(Message):
        """The agent's reply is stored as ``message_id``."""

        message_id: int
        draft_outcome: str | None = None
        """What became of the draft it came from (``sent``, ``edited``), when logged."""

    @dataclass
    class ReplyRefused(Message):
        """The reply was not stored (taken by another agent, closed, or the store failed)."""

        reason: str

    def __init__(self, conversation_id: int, *, claimed: bool = False) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.claimed = claimed
        self.conv: dict[str, Any] | None = None
        self.context: dict[str, Any] | None = None
        self.seen: set[int] = set()
        self.loaded = False
        self._saving_note = False
        self._summarised_state: str | None = None
        # Abusive messages on screen and still masked (id -> row), and what this agent has
        # chosen to read here (from the store's reveal events, then this screen's presses).
        self.hidden: dict[int, dict[str, Any]] = {}
        self.revealed: set[int] = set()
        self._revealing = False
        self._watch_number: int | None = None  # the reader's watch for this screen

    @property
    def tandem(self) -> TandemApp:
        return self.app  # type: ignore[return-value]

    @property
    def mine(self) -> bool:
        c = self.conv
        return c is not None and c["state"] == "human" and c.get("owner") == self.tandem.agent

    def compose(self) -> ComposeResult:
        yield Static(
            f"conversation #{self.conversation_id} · loading…", id="conv-header", markup=False
        )
        with Horizontal(id="conv-body"):
            with Vertical(id="conv-main"):
                yield Static("", id="handover", markup=False)
                yield VerticalScroll(id="transcript")
            with VerticalScroll(id="side"):
                yield Static("", id="side-context", markup=False)
        yield Static("", id="conv-hint", markup=False)
        yield Composer(
            self.tandem.backend,
            self.conversation_id,
            llm=self.tandem.llm,
            writer=self.tandem.writer,
            id="composer",
        )
        yield Input(placeholder="internal note (enter saves, escape cancels)", id="note-input")
        yield Input(id="whisper-input")
        yield Footer()

    def on_mount(self) -> None:
        # The transcript sits two containers down; it is mounted by the next refresh.
        self.call_after_refresh(self._start_watching)
        # Waiting and holding times in the header move on their own.
        self.set_interval(1.0, self._update_header)
        # Who has it open (this console too): said now, renewed on a beat, withdrawn on close.
        self._view()
        self.set_interval(VIEW_RENEW_SECONDS, self._view)

    def _start_watching(self) -> None:
        self.query_one("#transcript", VerticalScroll).anchor()
        self._watch_number = self.tandem.reader.watch(self.conversation_id)

    def on_resize(self, event: Resize) -> None:
        narrow = event.size.width < 100
        self.set_class(narrow, "-narrow")
        self.set_class(not narrow, "-wide")

    def action_earlier(self) -> None:
        if self.seen:
            self._load_earlier(min(self.seen))

    @work(thread=True, exclusive=True, group="earlier")
    def _load_earlier(self, before: int) -> None:
        # A read of up to 100 rows: off the event loop.
        try:
            rows = self.tandem.backend.earlier_messages(self.conversation_id, before)
        except StoreError as exc:
            self.app.call_from_thread(
                self.notify, f"earlier messages: {exc}", severity="warning", markup=False
            )
            return
        self.app.call_from_thread(self._prepend, rows)

    def _prepend(self, rows: list[dict[str, Any]]) -> None:
        box = self.query_one("#transcript", VerticalScroll)
        fresh = [m for m in rows if m["id"] not in self.seen]
        if not fresh:
            self.notify("this is the start of the conversation")
            return
        agent = self.tandem.agent
        widgets = [self._message_widget(m, agent) for m in fresh]
        box.release_anchor()
        box.mount_all(widgets, before=0)
        box.scroll_home(animate=False)

    @work(thread=True, exclusive=True, group="handover")
    def _summarize(self) -> None:
        # A transfer brought its summary along: the one the supervisor saw is shown. Else the
        # extractive summary at once, and an LLM summary (when configured) after it.
        llm = None
        if self.tandem.llm is not None:
            from console.llm import LLM

            llm = LLM(self.tandem.llm.config)  # its own client, on this thread's event loop
        try:
            for summary, sender in self.tandem.backend.handover(self.conversation_id, llm):
                via = None
                if sender is not None:
                    via = f"from {safe_text(sender, one_line=True)} with the transfer"
                self.app.call_from_thread(self._show_handover, summary, via)
        except StoreError:
            return  # the transcript itself says what is wrong with the store

    def _show_handover(self, summary: HandoverSummary, via: str | None = None) -> None:
        text = Text()
        text.append("Hand-over", style="bold")
        text.append(f" · {summary.engine}", style="dim")
        if via:
            text.append(f" · {via}", style="bold")
        text.append("\n")
        for label, value in (
            ("Wants", summary.wants),
            ("Bot so far", summary.tried),
            ("Feeling", summary.feeling),
        ):
            text.append(f"{label}: ", style="bold")
            text.append(safe_text(value))
            text.append("\n")
        if summary.notice:
            text.append(safe_text(summary.notice), style="dim italic")
        try:
            panel = self.query_one("#handover", Static)
        except NoMatches:
            return  # closed while the summary was written (resolved, a final notice, escape)
        text.rstrip()
        panel.update(text)
        panel.add_class("-shown")

    def action_toggle_context(self) -> None:
        if self.has_class("-narrow"):
            self.toggle_class("-context")
        else:
            self.toggle_class("-no-context")

    def on_unmount(self) -> None:
        if self._watch_number is not None:
            # Only this screen's own watch: the next screen may already follow its own.
            self.tandem.reader.unwatch(self._watch_number)
        cid, backend = self.conversation_id, self.tandem.backend
        self.tandem.writer.run_soon(lambda: backend.viewing(cid, False))

    def _view(self) -> None:
        cid, backend = self.conversation_id, self.tandem.backend
        self.tandem.writer.run_soon(lambda: backend.viewing(cid, True))

    # --- data from the reader -----------------------------------------------------------

    def apply(self, message: TranscriptChanged) -> None:
        if message.conversation is None:
            self.notify(f"conversation {self.conversation_id} no longer exists", severity="error")
            self.dismiss()
            return
        was_mine = self.mine
        self.conv = message.conversation
        if message.context is not None:
            self.context = message.context
        box = self.query_one("#transcript", VerticalScroll)
        new = [m for m in message.messages if m["id"] not in self.seen]
        if message.full:
            box.remove_children()
            self.seen.clear()
            self.hidden.clear()
            # Unknown: masked until revealed again, the safe side.
            self.revealed = set(message.revealed or ())
        else:
            # Already shown, triaged since: redraw in place (masked if abusive).
            for m in message.messages:
                if m["id"] in self.seen:
                    self._redraw(m)
        agent = self.tandem.agent
        widgets = [
            self._message_widget(m, agent) for m in (message.messages if message.full else new)
        ]
        if widgets:
            # A long conversation keeps its newest MAX_MOUNTED messages in the DOM (f6 loads
            # earlier ones again); the oldest go first.
            kept = [] if message.full else list(box.children)
            for w in kept[: max(0, len(kept) + len(widgets) - MAX_MOUNTED)]:
                self.seen.discard(int(w.name or 0))
                w.remove()
            box.mount_all(widgets)
        first_load = not self.loaded
        self.loaded = True
        self._update_chrome()
        state = self.conv["state"]
        hands = f"{state}:{self.conv.get('owner') or ''}"
        if state in ("waiting", "human") and self._summarised_state != hands:
            # A person is about to take over, or has: brief them (again when it changes hands).
            self._summarised_state = hands
            self._summarize()
        elif state not in ("waiting", "human"):
            self._summarised_state = None
            self.query_one("#handover", Static).remove_class("-shown")
        composer = self.query_one(Composer)
        if self.mine and (first_load and self.claimed or not was_mine and not first_load):
            composer.on_takeover()
            composer.focus_editor()
        elif self.mine and first_load:
            last = next(
                (m for m in reversed(message.messages) if m["role"] in ("customer", "agent")), None
            )
            if last is not None and last["role"] == "customer":
                # Reopened while the customer waits for our answer: draft it, as on takeover.
                composer.on_customer_message(last["id"])
            composer.focus_editor()
        if self.mine and not message.full:
            for m in new:
                if m["role"] == "customer":
                    composer.on_customer_message(m["id"])
        if was_mine and not self.mine:
            # Taken from this agent (a supervisor barged in, or moved it): what they were
            # writing stays in sight, read only; the app has told them already.
            owner = self.conv.get("owner") if self.conv["state"] == "human" else None
            composer.freeze(f"taken by {owner}" if owner else "no longer yours")
        elif self.mine and composer.frozen:
            composer.thaw()

    def _is_hidden(self, m: dict[str, Any]) -> bool:
        reasons = (self.conv or {}).get("reasons") or ()
        hidden = m["id"] not in self.revealed and masked(m, reasons)
        if hidden:
            self.hidden[m["id"]] = m
        else:
            self.hidden.pop(m["id"], None)
        return hidden

    def _message_widget(self, m: dict[str, Any], agent: str) -> Static:
        self.seen.add(m["id"])
        classes = f"msg msg-{m['role']}"
        if is_whisper(m):
            # A supervisor's whisper stands out; the one addressed to this agent most of all.
            classes += " msg-whisper" + (
                " -to-me" if (m.get("meta") or {}).get("to") == agent else ""
            )
        return Static(
            message_text(m, agent, hidden=self._is_hidden(m)),
            classes=classes,
            markup=False,
            name=str(m["id"]),
        )

    def _redraw(self, m: dict[str, Any]) -> None:
        for w in self.query_one("#transcript", VerticalScroll).children:
            if w.name == str(m["id"]) and isinstance(w, Static):
                w.update(message_text(m, self.tandem.agent, hidden=self._is_hidden(m)))
                return

    def action_reveal(self) -> None:
        """Show the newest masked message, recording that this agent chose to read it.

        One message per press, newest first: the newest is the one the agent must answer;
        the older ones stay hidden unless the agent asks again, and each one read is counted.
        """
        if not self.hidden:
            self.notify("no hidden message in this conversation")
            return
        if self._revealing:
            return
        self._revealing = True
        m = self.hidden[max(self.hidden)]
        self.run_worker(self._reveal(m), group="store-writes", name="reveal")

    async def _reveal(self, m: dict[str, Any]) -> None:
        mid = m["id"]
        try:
            await self.tandem.write(lambda b: b.reveal(mid))
        except InvalidInput:
            pass  # triage found it clean after all: nothing to record, nothing to hide
        except StoreError as exc:
            self._revealing = False
            self.notify(f"not revealed: {exc}", severity="warning", markup=False)
            return
        self._revealing = False
        self.revealed.add(mid)
        self._redraw(m)

    def _update_header(self) -> None:
        c = self.conv
        if c is None:
            return
        agent = self.tandem.agent
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(safe_text(c.get("customer_name") or "?", one_line=True), style="bold")
        head.append(f"  #{c['id']}  ", style="dim")
        head.append(status_words(c, agent))
        others = viewer_names(
            self.tandem.rows.get(self.conversation_id), time.time(), besides=agent
        )
        if others:
            head.append("  · also viewing: ", style="dim")
            head.append(", ".join(others), style="bold italic")
        head.append("\n")
        level = c.get("level") or "calm"
        head.append(f" {level} ", style=BADGE_STYLE.get(level, ""))
        model = set(c.get("model_reasons") or [])
        reasons = c.get("reasons") or []
        words = reason_words([r for r in reasons if r not in model])
        head.append("  " + (" · ".join(words) if words or model else "no flags"))
        if model:
            head.append(" · " if words else "")
            head.append(
                "AI: " + " · ".join(reason_words([r for r in reasons if r in model])),
                style="italic magenta",
            )
        self.query_one("#conv-header", Static).update(head)

    def _update_chrome(self) -> None:
        c = self.conv
        if c is None:
            return
        self._update_header()
        hint = self.query_one("#conv-hint", Static)
        if self.mine:
            hint.set_class(True, "-hidden")
        else:
            hint.set_class(False, "-hidden")
            if c["state"] == "human" and self.tandem.supervisor:
                hint.update(
                    f"{c.get('owner')} owns this conversation · w whisper to them · B barge in"
                    " · ctrl+n note · escape back"
                )
            elif c["state"] == "human":
                hint.update(f"{c.get('owner')} owns this conversation · ctrl+n note · escape back")
            elif c["state"] == "resolved":
                hint.update("resolved · the customer reopens it by writing again · escape back")
            else:
                who = "the bot" if c["state"] == "bot" else "the queue"
                hint.update(f"with {who} · ctrl+t take over · ctrl+n note · escape back")
        composer = self.query_one(Composer)
        composer.set_class(self.mine, "-active")
        if self.mine and composer.frozen:
            composer.thaw()
        self.query_one("#side-context", Static).update(self._context_text())
        self.refresh_bindings()

    def _context_text(self) -> Text:
        out = Text()
        c, ctx = self.conv, self.context or {}
        if c is not None:
            out.append("Customer\n", style="bold underline")
            out.append(safe_text(c.get("customer_name") or "?", one_line=True) + "\n")
            if c.get("external_id"):
                out.append(f"id {safe_text(str(c['external_id']), one_line=True)}\n", style="dim")
            out.append(
                f"{c.get('channel')} · {c.get('message_count')} messages"
                f" · bot fallbacks {c.get('bot_fallbacks')}\n",
                style="dim",
            )
            language = language_name(c)
            if language:
                out.append("writes in ", style="dim")
                out.append(language + "\n")
            else:  # too little written to tell ("hello?"); the next longer message decides
                out.append("language not known yet\n", style="dim")
            model = [r for r in c.get("reasons") or [] if r in (c.get("model_reasons") or [])]
            if model:
                # What the LLM judge added, marked as the model's, with its one line.
                out.append("AI: " + " · ".join(reason_words(model)), style="italic magenta")
                if c.get("model_why"):
                    out.append(" — " + safe_text(str(c["model_why"]), one_line=True), style="")
                out.append("\n")
            out.append("\n")
        out.append("Triage over time\n", style="bold underline")
        triage: list[dict[str, Any]] = []
        for t in ctx.get("triage") or []:
            # A re-triage that says the same again adds nothing to read.
            if (
                triage
                and t["kind"] == "triaged"
                and triage[-1]["level"] == t.get("level")
                and triage[-1]["reasons"] == t.get("reasons")
                and triage[-1].get("model_reasons") == t.get("model_reasons")
            ):
                continue
            triage.append(t)
        if not triage:
            out.append("no flags so far\n", style="dim")
        for t in triage[-8:]:
            stamp = time.strftime("%H:%M", time.localtime(t["at"]))
            level = t.get("level") or ""
            out.append(f"{stamp} ", style="dim")
            if t["kind"] == "escalated":
                out.append("escalated ", style="bold")
            if level:
                out.append(f" {level} ", style=BADGE_STYLE.get(level, ""))
            mine = set(t.get("model_reasons") or [])
            out.append(
                " " + " · ".join(reason_words([r for r in t.get("reasons") or [] if r not in mine]))
            )
            if mine:
                out.append(
                    " · AI: "
                    + " · ".join(reason_words([r for r in t.get("reasons") or [] if r in mine])),
                    style="italic magenta",
                )
            out.append("\n")
        out.append("\nKnowledge base used\n", style="bold underline")
        kb = ctx.get("kb") or []
        if not kb:
            out.append("none\n", style="dim")
        for a in kb:
            out.append(f"{safe_text(a['id'], one_line=True)} ", style="bold")
            out.append(safe_text(a.get("title") or "", one_line=True) + "\n")
        out.append("\nEarlier conversations\n", style="bold underline")
        history = ctx.get("history") or []
        if not history:
            out.append("first contact\n", style="dim")
        for h in history:
            day = time.strftime("%d %b", time.localtime(h["created_at"]))
            out.append(f"#{h['id']} {day} {h['state']} ", style="dim")
            out.append(safe_text(h.get("subject") or "", one_line=True)[:60] + "\n")
        return out

    # --- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.conv["state"] if self.conv else None
        if action == "take_over":
            return state in ("bot", "waiting")
        if action in ("whisper", "barge"):
            # Someone else holds it and this console is a supervisor's.
            return self.tandem.supervisor and state == "human" and not self.mine
        if action == "hand_back":
            return self.mine or (state == "human" and self.tandem.supervisor)
        if action == "final_notice":
            # Offered once abuse is on record; the store checks both again when it is pressed.
            reasons = (self.conv or {}).get("reasons") or ()
            return (
                self.tandem.supervisor
                and state not in (None, "resolved")
                and ("abuse" in reasons or bool(self.hidden or self.revealed))
            )
        if action == "resolve":
            return (
                state in ("bot", "waiting")
                or self.mine
                or (state == "human" and self.tandem.supervisor)
            )
        return True

    def action_back(self) -> None:
        for box in self.query("#note-input, #whisper-input").results(Input):
            if box.has_class("-active"):
                box.set_class(False, "-active")
                box.value = ""
                if self.mine:
                    self.query_one(Composer).focus_editor()
                else:
                    self.set_focus(None)
                return
        self.dismiss()

    def action_take_over(self) -> None:
        self.tandem.claim(self.conversation_id, reply_to=self)

    def on_tandem_app_claimed(self, message: TandemApp.Claimed) -> None:
        if message.conversation_id != self.conversation_id:
            return
        message.stop()
        if self.mine:
            return  # the feed showed the claim first and started the draft then
        if self.conv is not None:
            # Show the composer now; the feed confirms a moment later.
            self.conv = {
                **self.conv,
                "state": "human",
                "owner": self.tandem.agent,
                "claimed_at": time.time(),
            }
        self._update_chrome()
        composer = self.query_one(Composer)
        composer.on_takeover()
        composer.focus_editor()

    def on_tandem_app_claim_failed(self, message: TandemApp.ClaimFailed) -> None:
        # The app says why; a conversation another agent won is no place to stay.
        if message.conversation_id == self.conversation_id and message.kind == "taken":
            self.dismiss()

    def action_hand_back(self) -> None:
        cid = self.conversation_id
        self.tandem.move(
            "hand_back",
            cid,
            lambda b: b.hand_back(cid),
            f"#{cid} handed back to the bot",
            reply_to=self,
        )

    def action_resolve(self) -> None:
        cid = self.conversation_id
        self.tandem.move(
            "resolve",
            cid,
            lambda b: b.resolve(cid),
            f"#{cid} resolved",
            reply_to=self,
        )

    def action_final_notice(self) -> None:
        cid = self.conversation_id
        self.tandem.move(
            "final_notice",
            cid,
            lambda b: b.final_notice(cid),
            f"#{cid}: final notice sent, closed",
            reply_to=self,
        )

    def on_tandem_app_moved(self, message: TandemApp.Moved) -> None:
        if message.conversation_id != self.conversation_id:
            return
        if message.move in ("note", "whisper"):
            if message.move == "note":
                message.stop()  # the note shows in the transcript: no notification
            self._saving_note = False
            box = self.query_one(f"#{message.move}-input", Input)
            box.value = ""
            box.set_class(False, "-active")
            if self.mine:
                self.query_one(Composer).focus_editor()
            else:
                self.set_focus(None)
        elif message.move in ("hand_back", "resolve", "final_notice"):
            self.dismiss()

    def on_tandem_app_move_failed(self, message: TandemApp.MoveFailed) -> None:
        if message.move in ("note", "whisper"):
            self._saving_note = False  # the text stays in the box to try again

    def action_whisper(self) -> None:
        owner = (self.conv or {}).get("owner") or "the agent"
        box = self.query_one("#whisper-input", Input)
        box.placeholder = (
            f"whisper to {owner}: only they see it, highlighted (enter sends, escape cancels)"
        )
        box.set_class(True, "-active")
        box.focus()

    @on(Input.Submitted, "#whisper-input")
    def _whisper(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self._saving_note:
            return
        self._saving_note = True
        cid = self.conversation_id
        owner = (self.conv or {}).get("owner") or "the agent"
        self.tandem.move(
            "whisper",
            cid,
            lambda b: b.whisper(cid, text),
            f"whispered to {owner} on #{cid}",
            reply_to=self,
        )

    def action_barge(self) -> None:
        cid = self.conversation_id
        owner = (self.conv or {}).get("owner") or "the agent"
        self.tandem.move(
            "barge",
            cid,
            lambda b: b.barge(cid),
            f"#{cid} is yours now: {owner} was told",
            reply_to=self,
        )

    def action_kb_search(self) -> None:
        self._open_kb_search()

    @work(thread=True, exclusive=True, group="kb-open")
    def _open_kb_search(self) -> None:
        # The customer's latest words are read off the event loop (over the network, maybe).
        try:
            recent = self.tandem.backend.recent_messages(self.conversation_id, 50)
        except StoreError:
            recent = []
        self.app.call_from_thread(self._show_kb_search, recent)

    def _show_kb_search(self, recent: list[dict[str, Any]]) -> None:
        from console.ui.screens.kb_search import KbSearchScreen

        # The customer's latest message with searchable words ("hello?" has none).
        reasons = (self.conv or {}).get("reasons") or ()
        asked = next(
            (
                m["text"]
                for m in reversed(recent)
                if m["role"] == "customer"
                and terms(m["text"])
                and (m["id"] in self.revealed or not masked(m, reasons))
            ),
            "",
        )
        c = self.conv or {}
        subject = f"{c.get('customer_name') or '?'} #{self.conversation_id}"
        blocked = (
            None
            if self.mine
            else "Read only: inserting an article into the reply needs a take-over (ctrl+t)."
        )
        self.app.push_screen(
            KbSearchScreen(
                self.tandem.backend,
                query=asked,
                subject=subject,
                insert_blocked=blocked,
            ),
            self._kb_picked,
        )

    def _kb_picked(self, pick: KbPick | None) -> None:
        if pick is None:
            return
        if not self.mine:
            # Taken by someone else (or handed back) while the search was open.
            self.notify("inserting an article needs a take-over (ctrl+t)", severity="warning")
            return
        composer = self.query_one(Composer)
        composer.insert_text(pick.text)
        composer.focus_editor()

    def action_note(self) -> None:
        note = self.query_one("#note-input", Input)
        note.set_class(True, "-active")
        note.focus()

    @on(Input.Submitted, "#note-input")
    def _note(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self._saving_note:
            return
        self._saving_note = True
        cid = self.conversation_id
        self.tandem.move(
            "note",
            cid,
            lambda b: b.note(cid, text),
            f"note added to #{cid}",
            reply_to=self,
        )

    @on(Composer.Sent)
    def _send(self, event: Composer.Sent) -> None:
        self.run_worker(self._post_reply(event.text, event.draft_id), group="store-writes")

    async def _post_reply(self, text: str, draft_id: int | None) -> None:
        cid = self.conversation_id
        try:
            replied = await self.tandem.write(lambda b: b.reply(cid, text, draft_id))
        except StoreError as exc:  # Taken, NotOwner, closed, locked: one line each
            self.post_message(self.ReplyRefused(str(exc)))
            return
        self.tandem.reader.poke()
        self.post_message(self.ReplySent(replied.message_id, replied.draft_outcome))

    def on_conversation_screen_reply_sent(self, message: ReplySent) -> None:
        self.query_one(Composer).sent(message.message_id, message.draft_outcome)

    def on_conversation_screen_reply_refused(self, message: ReplyRefused) -> None:
        self.query_one(Composer).send_failed()
        self.notify(message.reason, severity="warning", markup=False)

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        cmds: list[tuple[str, str, Callable[[], object]]] = []
        if self.check_action("take_over", ()):
            cmds.append(
                (
                    "Take over",
                    "claim this conversation from the bot or the queue",
                    self.action_take_over,
                )
            )
        if self.mine:
            cmds.append(
                (
                    "Send reply",
                    "send the composer's text to the customer",
                    lambda: self.query_one(Composer).action_send(),
                )
            )
        if self.check_action("hand_back", ()):
            cmds.append(("Hand back to the bot", "the bot answers again", self.action_hand_back))
        if self.check_action("resolve", ()):
            cmds.append(("Resolve", "close the conversation", self.action_resolve))
        if self.check_action("final_notice", ()):
            cmds.append(
                (
                    "Final notice and close",
                    "an abusive customer, warned before: the fixed final notice, then resolve",
                    self.action_final_notice,
                )
            )
        if self.check_action("whisper", ()):
            owner = (self.conv or {}).get("owner")
            cmds.append(
                (
                    f"Whisper to {owner}",
                    "a note only the agent holding it sees, highlighted at once",
                    self.action_whisper,
                )
            )
            cmds.append(
                (
                    "Barge in",
                    f"take this conversation over from {owner}, who is told at once",
                    self.action_barge,
                )
            )
        cmds.append(
            (
                "Search the knowledge base",
                "find an article and insert its answer into the reply",
                self.action_kb_search,
            )
        )
        cmds.append(("Add internal note", "visible to agents only", self.action_note))
        cmds.append(
            (
                "Earlier messages",
                "load the 100 messages before the oldest shown",
                self.action_earlier,
            )
        )
        cmds.append(
            (
                "Toggle customer context",
                "history, triage over time, KB articles",
                self.action_toggle_context,
            )
        )
        cmds.append(("Back to the wall", "", self.action_back))
        return cmds
