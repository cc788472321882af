"""Helpers for the console's Pilot tests (a uniquely named module, imported by the tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from waiting import DEADLINE, wait_until_async


async def wait_until(
    pilot: Any, cond: Callable[[], object], timeout: float = DEADLINE, what: str = ""
) -> None:
    """Let the app run until ``cond()`` is true (the feed thread posts at ~10 Hz)."""
    await wait_until_async(cond, timeout=timeout, interval=0.05, what=what, pause=pilot.pause)


S = TypeVar("S")


async def screen_up(pilot: Any, kind: type[S], what: str = "") -> S:
    """The screen a key pushes, once it is the one up and composed.

    ``pilot.press`` returns when the app looks idle, which on a loaded machine can be before
    the key has gone through its bindings; and a pushed screen composes in its own task a
    moment after the push. Its widgets are there once it ``is_mounted``.
    """
    app = pilot.app
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, kind) and app.screen.is_mounted,
        what=what or f"the {kind.__name__}",
    )
    screen: S = app.screen
    return screen


async def answer_prompt(pilot: Any, key: str, text: str) -> None:
    """Press ``key`` (it asks a question in a modal), type ``text`` in the answer, enter.

    Typed before the modal has composed and focused its input, the keys would go to the
    screen (and its bindings) instead: the typing waits for the input's focus.
    """
    from textual.widgets import Input

    from console.ui.widgets.prompt import PromptScreen

    await pilot.press(key)
    prompt = await screen_up(pilot, PromptScreen, what=f"the question {key} asks")
    await wait_until(pilot, lambda: isinstance(prompt.focused, Input), what="its answer box")
    await pilot.press(*text, "enter")


async def type_into(pilot: Any, key: str, box: str, text: str, *, enter: bool = True) -> None:
    """Press ``key`` (it shows and focuses the input ``#box`` of the screen up), type ``text``.

    The key's handler asks for the focus, which Textual gives a message later: keys typed
    before that go to whatever had it (the reply's editor).
    """
    app = pilot.app
    await pilot.press(key)
    await wait_until(
        pilot, lambda: app.focused is not None and app.focused.id == box, what=f"#{box} focused"
    )
    await pilot.press(*text, *(["enter"] if enter else []))


def notes(app: Any) -> list[str]:
    """Messages of the notifications shown so far."""
    return [n.message for n in app._notifications]
