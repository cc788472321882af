"""Exceptions raised by the store.

Every refusal says why in words an agent can read ("taken by ana"), so the CLI and the
console can show ``str(exc)`` as it is.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error the store raises on purpose."""


class DatabaseUnavailable(StoreError):
    """The database file cannot be used: not SQLite, locked, unreadable."""


class ReadOnly(DatabaseUnavailable):
    """The file or its directory cannot be written (permissions, a read-only mount)."""


class Damaged(DatabaseUnavailable):
    """SQLite found the file damaged ("database disk image is malformed")."""


class InvalidInput(StoreError):
    """An argument is malformed: empty or oversized text, an unknown level."""


class NotFound(StoreError):
    """The conversation (or agent, draft, article) does not exist."""


class InvalidTransition(StoreError):
    """The lifecycle refuses this move from the conversation's current state."""

    def __init__(self, message: str, *, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class Taken(InvalidTransition):
    """Another agent owns the conversation already."""

    def __init__(self, owner: str, *, state: str = "human") -> None:
        super().__init__(f"taken by {owner}", state=state)
        self.owner = owner


class NotOwner(InvalidTransition):
    """The caller does not own the conversation (the bot, or an agent who is not the owner)."""

    def __init__(self, message: str, *, state: str | None = None, owner: str | None = None) -> None:
        super().__init__(message, state=state)
        self.owner = owner


class AlreadyAnswered(InvalidTransition):
    """The bot already replied to this customer message (a replay after a restart)."""


class Forbidden(NotOwner):
    """The caller's role or account does not allow this move (an agent assigning, a disabled
    account claiming). A :class:`NotOwner`, so code that already refuses non-owners refuses it."""
