"""Alerts: who must hear at once that a customer needs a person (issue 16, point 6).

A conversation entering the queue at ``empathy`` or ``urgent``, or waiting past its level's SLA,
rings the terminal bell, shows a Textual notification, and, where the terminal supports it,
sends a desktop notification (OSC 9 or OSC 777). Each agent chooses how much they hear
(``tandem console --alerts all|urgent|off``).

What goes into an escape sequence is built here from the customer's display name, the level
and the id only, with every control character removed: a name is customer input, and an ESC or
BEL in it would end the sequence and let the rest reach the terminal as commands.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from console.ui.model import safe_text

ALERT_MODES = ("all", "urgent", "off")
AlertMode = Literal["all", "urgent", "off"]
NOTIFY_PROTOCOLS = ("osc9", "osc777", "none")
NotifyProtocol = Literal["osc9", "osc777", "none"]
# The levels that alert when they enter the queue, per mode.
_ENTRY_LEVELS = {"all": ("empathy", "urgent"), "urgent": ("urgent",), "off": ()}
NAME_CHARS = 40


def terminal_safe(text: str, limit: int = 120) -> str:
    """``text`` fit for a terminal escape's argument: no control or format characters at all
    (C0, DEL, C1 such as the 8-bit ST, bidi overrides), no ``;`` (OSC 777's field separator),
    whitespace runs as one space, at most ``limit`` characters."""
    out: list[str] = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch)[0] != "C" and ch != ";":
            out.append(ch)
    return " ".join("".join(out).split())[:limit]


def osc_notification(protocol: NotifyProtocol, title: str, body: str) -> str:
    """The escape sequence that asks the terminal for a desktop notification ("" for none)."""
    title, body = terminal_safe(title, 40), terminal_safe(body)
    if protocol == "osc9":
        return f"\x1b]9;{title}: {body}\x07"
    if protocol == "osc777":
        return f"\x1b]777;notify;{title};{body}\x07"
    return ""


def detect_protocol(env: Mapping[str, str]) -> NotifyProtocol:
    """Which desktop notification the terminal understands, from its environment.

    OSC 9: iTerm2, WezTerm, kitty, Windows Terminal, Ghostty. OSC 777: VTE terminals (GNOME
    Terminal, Tilix...), urxvt, foot. Inside tmux or screen neither reaches the outer terminal
    (tmux drops unknown OSCs unless passthrough is on): the bell still does, tmux shows it.
    """
    if env.get("TMUX") or env.get("STY"):
        return "none"
    program = env.get("TERM_PROGRAM", "")
    term = env.get("TERM", "")
    if program in ("iTerm.app", "WezTerm", "ghostty") or env.get("KITTY_WINDOW_ID"):
        return "osc9"
    if env.get("WT_SESSION"):
        return "osc9"
    if env.get("VTE_VERSION") or term.startswith(("rxvt", "foot")):
        return "osc777"
    return "none"


@dataclass(frozen=True, slots=True)
class Alert:
    """What to say: one line for the notification and the desktop, and how loud.

    ``body`` names the first conversation; ``more`` counts the others it stands for.
    """

    title: str
    body: str
    severity: Literal["warning", "error"]
    more: int = 0

    @property
    def text(self) -> str:
        return self.body + (f" (and {self.more} more)" if self.more else "")


@dataclass(slots=True)
class ToastFolder:
    """At most one notification of each kind (title) on screen at a time.

    A busy queue alerted once per conversation: on an 80x24 terminal six toasts covered half
    the wall, and the reply being written. While one is shown, later alerts of its kind are
    held; when it has gone, they come as one ("... (and 3 more)"), most urgent first. The
    bell and the desktop notification are not held (they are rate-limited on their own).

    Args:
        showing_s: how long a notification stays on screen.
    """

    showing_s: float
    _until: dict[str, float] = field(default_factory=dict)
    _shown: dict[str, str] = field(default_factory=dict)  # the severity on screen, per title
    _held: dict[str, list[Alert]] = field(default_factory=dict)

    def offer(self, alert: Alert, now: float) -> tuple[Alert | None, float | None]:
        """(the alert to show now or ``None``, seconds until the held ones are due when this
        is the first held since the one on screen, else ``None``). An urgent one (``error``)
        is not held behind a lesser one."""
        until = self._until.get(alert.title, -math.inf)
        louder = alert.severity == "error" and self._shown.get(alert.title) != "error"
        if now < until and not louder:
            held = self._held.setdefault(alert.title, [])
            held.append(alert)
            return None, (until - now if len(held) == 1 else None)
        if now >= until and self._held.get(alert.title):
            # Its held ones are due but their timer has not fired yet: one toast for all.
            self._held[alert.title].append(alert)
            return self.due(alert.title, now), None
        self._until[alert.title] = now + self.showing_s
        self._shown[alert.title] = alert.severity
        return alert, None

    def due(self, title: str, now: float) -> Alert | None:
        """The alerts held for ``title``, as one, once its notification has gone."""
        held = self._held.pop(title, [])
        if not held:
            return None
        lead = next((a for a in held if a.severity == "error"), held[0])
        self._until[title] = now + self.showing_s
        self._shown[title] = lead.severity
        more = sum(1 + a.more for a in held) - 1
        return Alert(title, lead.body, lead.severity, more)


@dataclass(slots=True)
class AlertWatch:
    """Decides when to alert, from the rows the feed delivers and the clock.

    Args:
        mode: ``all`` (empathy or urgent entering the queue, any breach), ``urgent`` (urgent
            ones only), ``off``.
        sla_s: the queue's target per level, in seconds.
    """

    mode: AlertMode
    sla_s: Mapping[str, float]
    # Waits already alerted as breached: (conversation id, waiting_since) — one alert per stay.
    _breached: set[tuple[int, float]] = field(default_factory=set)

    def _levels(self) -> tuple[str, ...]:
        return _ENTRY_LEVELS[self.mode]

    def entered(
        self, changes: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]]
    ) -> Alert | None:
        """An alert for conversations that just entered the queue (or rose while in it) at an
        alerting level; ``changes`` are (row before or ``None``, row now) from one feed batch."""
        levels = self._levels()
        new = [
            row
            for old, row in changes
            if row["state"] == "waiting"
            and row.get("level") in levels
            and (
                old is None
                or old["state"] != "waiting"
                or old.get("level") not in levels
                or (row.get("level") == "urgent" and old.get("level") != "urgent")
            )
        ]
        if not new:
            return None
        new.sort(key=lambda r: (r.get("level") != "urgent", r["id"]))
        first = new[0]
        return Alert(
            "Tandem: a customer needs a person",
            f"{_name(first)} #{first['id']} is waiting, {first.get('level')}",
            "error" if first.get("level") == "urgent" else "warning",
            len(new) - 1,
        )

    def breached(self, rows: Iterable[Mapping[str, Any]], at: float) -> Alert | None:
        """An alert for waits that went over their level's target since the last call."""
        if self.mode == "off":
            return None
        waiting = [r for r in rows if r["state"] == "waiting" and r.get("waiting_since")]
        stays = {(r["id"], float(r["waiting_since"])) for r in waiting}
        self._breached &= stays  # forget waits that ended: a new stay may alert again
        new = []
        for r in waiting:
            level = r.get("level") or "calm"
            if self.mode == "urgent" and level != "urgent":
                continue
            target = self.sla_s.get(level, self.sla_s.get("calm", 0.0))
            key = (r["id"], float(r["waiting_since"]))
            if target and at - r["waiting_since"] > target and key not in self._breached:
                self._breached.add(key)
                new.append(r)
        if not new:
            return None
        new.sort(key=lambda r: (r["waiting_since"], r["id"]))
        first = new[0]
        level = first.get("level") or "calm"
        target = self.sla_s.get(level, 0.0)
        return Alert(
            "Tandem: SLA breached",
            f"{_name(first)} #{first['id']} ({level}) has waited over {target:.0f} s",
            "error",
            len(new) - 1,
        )


def _name(row: Mapping[str, Any]) -> str:
    return terminal_safe(safe_text(row.get("customer_name") or "?", one_line=True), NAME_CHARS)
