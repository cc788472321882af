"""A one-line question in a modal (an agent's name to assign to, a note's text)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class PromptScreen(ModalScreen[str | None]):
    """Asks one question; dismisses with the answer, or ``None`` on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 64; height: auto; padding: 1 2; border: thick $accent; background: $surface; }
    PromptScreen .prompt-hint { color: $text-muted; }
    """

    def __init__(self, question: str, *, hint: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.hint = hint
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            yield Input(placeholder=self.placeholder, id="prompt-input")
            if self.hint:
                yield Static(self.hint, classes="prompt-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
