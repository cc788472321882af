"""One conversation on the wall: customer, state, triage badge, and its last few turns.

A tile is a slot: the wall keeps a fixed pool sized to the screen and points each slot at a
conversation. :meth:`Tile.show` skips the repaint when the conversation's row is the same
object with the same flags, so an unchanged tile costs nothing per feed batch.
"""

from __future__ import annotations

import time
from typing import Any

from rich.segment import Segment
from rich.text import Text
from textual.events import Click
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from console.ui.model import level_rank, reason_words, safe_text, status_words

TILE_HEIGHT = 7
TILE_MIN_WIDTH = 38

BADGE_STYLE = {
    "urgent": "bold white on red",
    "empathy": "bold black on dark_orange",
    "watch": "black on cyan",
    "calm": "black on grey70",
}
ROLE_MARK = {"customer": ("›", "bold"), "bot": ("·", "dim"), "agent": ("»", "green"), "system": ("‣", "dim italic")}


def tile_text(row: dict[str, Any], agent: str, width: int, at: float | None = None) -> Text:
    """The tile's content as plain ``Text`` (never markup), each line cut to ``width``."""
    width = max(10, width)
    status = status_words(row, agent, at)
    name = safe_text(row.get("customer_name") or "?", one_line=True)
    head = Text(no_wrap=True, overflow="ellipsis")
    room = max(4, width - len(status) - len(str(row["id"])) - 3)
    head.append(name[:room] + ("…" if len(name) > room else ""), style="bold")
    head.append(f" #{row['id']}", style="dim")
    head.append(" " * max(1, width - head.cell_len - len(status)))
    head.append(status, style="bold yellow" if row["state"] == "waiting" else "")
    lines = [head]

    level = row.get("level") or "calm"
    badge = Text(no_wrap=True, overflow="ellipsis")
    badge.append(f" {level} ", style=BADGE_STYLE.get(level, ""))
    words = reason_words(row.get("reasons") or [])
    if words:
        badge.append(" " + " · ".join(words), style="bold" if level_rank(row) >= 2 else "")
    elif row.get("subject"):
        badge.append(" " + safe_text(row["subject"], one_line=True), style="dim")
    lines.append(badge)

    turns = row.get("turns") or []
    for turn in turns[-3:]:
        mark, style = ROLE_MARK.get(turn["role"], ("·", ""))
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{mark} ", style=style)
        line.append(safe_text(turn["text"], one_line=True), style=style if turn["role"] != "customer" else "")
        lines.append(line)
    if not turns:
        lines.append(Text("no messages yet", style="dim italic"))
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


class Tile(Widget):
    """A slot on the wall showing one conversation (or nothing)."""

    DEFAULT_CSS = """
    Tile { height: 7; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    class Clicked(Message):
        """The agent clicked a tile (select and open it)."""

        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def __init__(self, agent: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.agent = agent
        self.row: dict[str, Any] | None = None
        self._sig: tuple[Any, ...] | None = None
        self._lines: list[Strip] | None = None
        self._lines_key: tuple[Any, ...] | None = None

    @property
    def conversation_id(self) -> int | None:
        return None if self.row is None else self.row["id"]

    def show(self, row: dict[str, Any] | None, *, selected: bool, rising: bool, at: float) -> None:
        """Point the slot at ``row``; repaint only if something visible changed.

        Args:
            row: the conversation, or ``None`` for an empty slot.
            selected: the wall's cursor is on it.
            rising: its level just rose (highlighted for a few seconds).
            at: the wall's clock, so the waiting time shown moves (only when its words change).
        """
        status = status_words(row, self.agent, at) if row is not None else ""
        sig = (id(row), selected, rising, status)
        if sig == self._sig:
            return
        self._sig = sig
        self._lines = None
        self.row = row
        self.display = row is not None
        self.set_class(selected, "-selected")
        self.set_class(rising, "-rising")
        if row is not None:
            for level in ("urgent", "empathy", "watch", "calm"):
                self.set_class(row.get("level") == level, f"-{level}")
            self.set_class(row["state"] == "waiting", "-waiting")
            self.set_class(row["state"] == "human" and row.get("owner") == self.agent, "-mine")
        self.refresh()

    def render_line(self, y: int) -> Strip:
        # The Line API with our own cache: a tile's strips are built once per change from
        # plain Text, skipping Textual's general content pipeline (the wall's main cost).
        width = self.content_size.width
        base = self.visual_style.rich_style
        key = (width, base)
        if self._lines is None or self._lines_key != key:
            self._lines_key = key
            self._lines = self._build(width, base)
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(width, base)

    def _build(self, width: int, base: Any) -> list[Strip]:
        if self.row is None or width <= 0:
            return []
        console = self.app.console
        text = tile_text(self.row, self.agent, width, time.time())
        strips = []
        for line in text.split("\n", allow_blank=True):
            segments = Segment.apply_style(line.render(console), base)
            strips.append(Strip(list(segments)).adjust_cell_length(width, base))
        return strips

    def on_click(self, event: Click) -> None:
        if self.row is not None:
            event.stop()
            self.post_message(self.Clicked(self.row["id"]))
