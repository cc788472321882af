"""One conversation on the wall: customer, state, triage badge, and its last few turns.

A tile is a slot: the wall keeps a fixed pool sized to the screen and points each slot at a
conversation. :meth:`Tile.show` skips the repaint when nothing visible changed. A tile draws
its own frame from cached strips (Line API) instead of switching CSS classes: a class change
restyles and re-lays out the grid, which made every cursor move repaint the whole screen.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.events import Click
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from console.policy import NEEDS_HUMAN, level_rank
from console.ui.model import (
    MASKED_SHORT,
    language_code,
    masked,
    reason_words,
    safe_text,
    status_words,
    viewer_names,
)

TILE_HEIGHT = 7
TILE_MIN_WIDTH = 38

BADGE_STYLE = {
    "urgent": "bold white on red",
    "empathy": "bold black on dark_orange",
    "watch": "black on cyan",
    "calm": "black on grey70",
}
ROLE_MARK = {
    "customer": ("›", "bold"),
    "bot": ("·", "dim"),
    "agent": ("»", "green"),
    "system": ("‣", "dim italic"),
}


def over_sla(row: Mapping[str, Any], sla_s: Mapping[str, float] | None, at: float) -> bool:
    """Waiting in the queue longer than its level's target (``sla_s``: seconds per level)."""
    if not sla_s or row["state"] != "waiting" or not row.get("waiting_since"):
        return False
    target = sla_s.get(row.get("level") or "calm", sla_s.get("calm"))
    return target is not None and at - row["waiting_since"] > target


def tile_text(
    row: dict[str, Any],
    agent: str,
    width: int,
    at: float | None = None,
    sla_s: Mapping[str, float] | None = None,
) -> Text:
    """The tile's content as plain ``Text`` (never markup), each line cut to ``width``.

    A wait over its level's target in ``sla_s`` is red on the status line.
    """
    width = max(10, width)
    at = at or time.time()
    status = status_words(row, agent, at)
    name = safe_text(row.get("customer_name") or "?", one_line=True)
    head = Text(no_wrap=True, overflow="ellipsis")
    # Turns whose LLM answer was not used (timeout, ungrounded, an overruled hand-off...):
    # the transcript says why; the tile says how often.
    llm = f" ⚠llm {row['llm_fallbacks']}" if row.get("llm_fallbacks") else ""
    room = max(4, width - len(status) - len(str(row["id"])) - len(llm) - 3)
    head.append(name[:room] + ("…" if len(name) > room else ""), style="bold")
    head.append(f" #{row['id']}", style="dim")
    if llm:
        head.append(llm, style="yellow")
    head.append(" " * max(1, width - head.cell_len - len(status)))
    waiting = row["state"] == "waiting"
    breach = over_sla(row, sla_s, at)
    head.append(status, style="bold white on red" if breach else "bold yellow" if waiting else "")
    lines = [head]

    level = row.get("level") or "calm"
    badge = Text(no_wrap=True, overflow="ellipsis")
    badge.append(f" {level} ", style=BADGE_STYLE.get(level, ""))
    lang = language_code(row)
    if lang:
        badge.append(f" {lang}", style="dim")
    reasons = row.get("reasons") or []
    model = set(row.get("model_reasons") or [])
    words = reason_words([r for r in reasons if r not in model])
    strong = "bold" if level_rank(row.get("level")) >= level_rank(NEEDS_HUMAN) else ""
    if words:
        badge.append(" " + " · ".join(words), style=strong)
    if model:
        # The LLM judge's reasons, marked as the model's: agents weigh them differently.
        badge.append(" · " if words else " ", style=strong)
        badge.append(
            "AI: " + " · ".join(reason_words([r for r in reasons if r in model])),
            style="italic magenta",
        )
    if not words and not model and row.get("subject"):
        badge.append(" " + safe_text(row["subject"], one_line=True), style="dim")
    lines.append(badge)

    turns = row.get("turns") or []
    for turn in turns[-3:]:
        mark, style = ROLE_MARK.get(turn["role"], ("·", ""))
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{mark} ", style=style)
        if masked(turn, reasons):
            # Abusive text is read on purpose, in the conversation (v), never at a glance.
            line.append(MASKED_SHORT, style="italic yellow")
        else:
            line.append(
                safe_text(turn["text"], one_line=True),
                style=style if turn["role"] != "customer" else "",
            )
        lines.append(line)
    if not turns:
        lines.append(Text("no messages yet", style="dim italic"))
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


class Tile(Widget):
    """A slot on the wall showing one conversation (or nothing)."""

    DEFAULT_CSS = """
    Tile { height: 7; }
    """

    class Clicked(Message):
        """The agent clicked a tile (select and open it)."""

        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def __init__(self, agent: str, sla_s: Mapping[str, float] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.agent = agent
        self.sla_s = sla_s
        self.row: dict[str, Any] | None = None
        self.selected = False
        self.rising = False
        self.viewers: tuple[str, ...] = ()
        """Who has the conversation open, drawn on the bottom edge."""
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
        # Who has it open: a viewer whose record runs out disappears on the next tick.
        viewers = viewer_names(row, at)
        sig = (id(row), selected, rising, status, viewers)
        if sig == self._sig:
            return
        self._sig = sig
        self.viewers = viewers
        self._lines = None
        self.row, self.selected, self.rising = row, selected, rising
        self.refresh()

    def frame(self) -> str:
        """Which frame the tile wears: ``selected``, ``rising``, or its level."""
        if self.row is None:
            return "none"
        if self.selected:
            return "selected"
        if self.rising:
            return "rising"
        return self.row.get("level") or "calm"

    def render_line(self, y: int) -> Strip:
        # The Line API with our own cache: a tile's strips are built once per change from
        # plain Text, skipping Textual's general content pipeline (the wall's main cost).
        width = self.size.width
        base = self.visual_style.rich_style
        key = (width, base, self.app.theme)
        if self._lines is None or self._lines_key != key:
            self._lines_key = key
            row = self.row
            if row is None:
                self._lines = []
            else:
                # Scrolling re-points slots at conversations drawn a moment ago in another slot.
                ckey = (
                    row["id"],
                    row.get("updated_at"),
                    row.get("version"),
                    row.get("level"),
                    row.get("score"),
                    tuple(row.get("reasons") or ()),
                    tuple(row.get("model_reasons") or ()),
                    row.get("lang"),
                    # A turn triaged after it was stored changes what it shows (masked).
                    tuple(t.get("level") for t in row.get("turns") or ()),
                    self._sig,
                    key,
                )
                lines = _STRIPS.get(ckey)
                if lines is None:
                    lines = _STRIPS[ckey] = self._build(width, base)
                    if len(_STRIPS) > STRIP_CACHE:
                        del _STRIPS[next(iter(_STRIPS))]
                self._lines = lines
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(width, base)

    def _build(self, width: int, base: Style) -> list[Strip]:
        if self.row is None or width < 6:
            return []
        palette = _palette(self.app)
        kind = self.frame()
        (tl, tr, bl, br, top, bottom, vt), colour = FRAMES[kind], palette[FRAME_COLOUR[kind]]
        bg = palette["surface"]
        if kind == "rising":
            bg = palette["warning-muted"]
        elif self.row["state"] == "human" and self.row.get("owner") == self.agent:
            bg = palette["success-muted"]
        body = base + Style(bgcolor=bg)
        edge = body + Style(color=colour, bold=kind in ("selected", "urgent"))
        inner = width - 4
        console = self.app.console
        text = tile_text(self.row, self.agent, inner, time.time(), self.sla_s)
        strips = [Strip([Segment(tl + top * (width - 2) + tr, edge)], width)]
        left, right = Segment(vt, edge), Segment(vt, edge)
        for line in text.split("\n", allow_blank=True)[: TILE_HEIGHT - 2]:
            # Fitted by the measure Strip and the compositor use: each segment on its own.
            # Text.cell_len measures the joined line, and a zero-width joiner at a segment's
            # end swallows the next segment's first cell there but not here, so a name ending
            # in one made the line a cell wider than the tile and pushed its border over.
            body_segments = Segment.adjust_line_length(
                list(Segment.apply_style(line.render(console), body)), inner, style=body
            )
            segments = [left, Segment(" ", body), *body_segments, Segment(" ", body), right]
            strips.append(Strip(segments, width))
        blank = Strip([left, Segment(" " * (width - 2), body), right], width)
        while len(strips) < TILE_HEIGHT - 1:
            strips.append(blank)
        strips.append(self._bottom(width, edge, bl, bottom, br))
        return strips

    def _bottom(self, width: int, edge: Style, left: str, line: str, right: str) -> Strip:
        """The bottom edge, carrying who has the conversation open ("sam viewing")."""
        names = self.viewers
        if not names or width < 16:
            return Strip([Segment(left + line * (width - 2) + right, edge)], width)
        label = " " + ", ".join(names) + (" viewing " if len(names) == 1 else " are viewing ")
        room = width - 4
        if cell_len(label) > room:
            label = set_cell_size(label, room - 2) + "… "
        segments = [
            Segment(left + line, edge),
            Segment(label, edge + Style(italic=True, bold=True)),
            Segment(line * max(0, width - 3 - cell_len(label)) + right, edge),
        ]
        return Strip(Segment.adjust_line_length(segments, width, style=edge), width)

    def on_click(self, event: Click) -> None:
        if self.row is not None:
            event.stop()
            self.post_message(self.Clicked(self.row["id"]))


# Box characters per frame: corners (top-left, top-right, bottom-left, bottom-right), the top
# edge, the bottom edge, the sides.
FRAMES = {
    "none": ("", "", "", "", "", "", ""),
    "calm": ("╭", "╮", "╰", "╯", "─", "─", "│"),
    "watch": ("╭", "╮", "╰", "╯", "─", "─", "│"),
    "empathy": ("╭", "╮", "╰", "╯", "─", "─", "│"),
    "urgent": ("┏", "┓", "┗", "┛", "━", "━", "┃"),
    "rising": ("╔", "╗", "╚", "╝", "═", "═", "║"),
    "selected": ("█", "█", "█", "█", "▀", "▄", "█"),
}
FRAME_COLOUR = {
    "none": "surface",
    "calm": "panel-lighten-2",
    "watch": "primary",
    "empathy": "warning",
    "urgent": "error",
    "rising": "warning",
    "selected": "foreground",
}


def _palette(app: Any) -> dict[str, Color]:
    """Theme colours as Rich colours, cached per theme (a tile frame is drawn, not styled)."""
    theme = app.theme
    cached = _PALETTES.get(theme)
    if cached is None:
        variables = app.get_css_variables()
        cached = {}
        for name in (
            "surface",
            "panel-lighten-2",
            "primary",
            "warning",
            "error",
            "foreground",
            "warning-muted",
            "success-muted",
        ):
            try:
                cached[name] = Color.parse(variables.get(name, "") or "default")
            except Exception:  # an unusual theme value: fall back to the terminal's colour
                cached[name] = Color.default()
        _PALETTES[theme] = cached
    return cached


_PALETTES: dict[str, dict[str, Color]] = {}
# Built tiles by what they show (oldest first out): about ten screens of tiles.
STRIP_CACHE = 256
_STRIPS: dict[tuple[Any, ...], list[Strip]] = {}
