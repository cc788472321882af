"""The reply composer: a text editor plus a one-line status, in the conversation screen.

The screen owns the store writes: it handles :class:`Composer.Sent` by calling
``store.lifecycle.agent_reply`` and, on success, :meth:`Composer.sent`. The drafts part
(DESIGN.md section 6) streams suggested replies into the editor through
:meth:`Composer.on_takeover` and :meth:`Composer.on_customer_message`; a draft is never sent
without the agent pressing send.

Bindings:

| key              | action                         |
|------------------|--------------------------------|
| ctrl+s           | send the text to the customer  |
| ctrl+enter       | send (where the terminal reports it) |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static, TextArea


class Composer(Widget):
    """A ``TextArea`` for the agent's reply and a status line under it.

    Args:
        db_path: the store file (the drafts part opens its own connection from it).
        conversation_id: the conversation this composer writes to.
        agent: the agent's name.
    """

    DEFAULT_CSS = """
    Composer {
        height: auto;
        max-height: 12;
    }
    Composer > TextArea {
        height: auto;
        min-height: 3;
        max-height: 10;
    }
    Composer > .composer--status {
        height: 1;
        color: $text-muted;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "send", "Send", id="composer.send", tooltip="Send the reply to the customer"),
        Binding("ctrl+enter", "send", "Send", show=False, id="composer.send_enter"),
    ]

    @dataclass
    class Sent(Message):
        """The agent pressed send; the screen posts ``text`` through the store."""

        text: str
        """What the agent wrote (as it is in the editor)."""
        draft_id: int | None
        """The draft this text started from, if any (for the drafts log)."""

    def __init__(self, db_path: Path, conversation_id: int, agent: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.db_path = Path(db_path)
        self.conversation_id = conversation_id
        self.agent = agent
        # The draft the editor's text came from; set by the drafts part when it streams one.
        self.draft_id: int | None = None

    def compose(self) -> ComposeResult:
        yield TextArea(id="composer-input", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        yield Static("ctrl+s sends", classes="composer--status", markup=False)

    @property
    def editor(self) -> TextArea:
        """The text area holding the reply."""
        return self.query_one("#composer-input", TextArea)

    @property
    def text(self) -> str:
        """The reply as currently written."""
        return self.editor.text

    def set_status(self, text: str) -> None:
        """Show one line under the editor (plain text, never markup)."""
        self.query_one(".composer--status", Static).update(text)

    def focus_editor(self) -> None:
        """Put the keyboard focus in the editor."""
        self.editor.focus()

    def action_send(self) -> None:
        text = self.editor.text
        if not text.strip():
            self.set_status("nothing to send")
            return
        self.post_message(self.Sent(text, self.draft_id))

    def on_takeover(self) -> None:
        """The screen claimed the conversation: the editor is ours now."""
        self.set_status("you own this conversation · ctrl+s sends")

    def on_customer_message(self, message_id: int) -> None:
        """A new customer message arrived while we own the conversation."""
        del message_id  # the drafts part uses it to mark older drafts stale

    def sent(self, message_id: int) -> None:
        """The reply was stored as ``message_id``: empty the editor."""
        self.clear()
        self.set_status(f"sent (message {message_id})")

    def clear(self) -> None:
        """Empty the editor and forget the draft."""
        self.editor.clear()
        self.draft_id = None
