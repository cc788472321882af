"""Command palette entries: one provider that asks the current screen what it can do.

Each screen implements ``palette_commands()`` returning ``(title, help, callback)`` for the
actions that make sense right now (posting's pattern: entries follow the screen's state), so
every binding also has a palette entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider


class HasCommands(Protocol):
    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]: ...


class ScreenCommands(Provider):
    """The current screen's actions, by name."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        screen = self.screen
        fn = getattr(screen, "palette_commands", None)
        return list(fn()) if fn else []

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
