"""The console's backend: one interface, a local and a remote implementation (see ``base``).

The UI imports what it needs from here, never from ``store``: the exceptions a refusal
raises, the types of what the reads return, and the two backends.
"""

from console.backend.base import (
    Backend,
    DraftClient,
    Feed,
    FeedEvent,
    Replied,
    SessionEnded,
    StatusCallback,
)
from console.backend.local import LocalBackend
from store.drafts import DraftMetrics
from store.errors import (
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    StoreError,
    Taken,
)
from store.kb import KbArticle, KbHit, terms
from store.routing import PAUSED, ROUTER, AtCapacity

__all__ = [
    "PAUSED",
    "ROUTER",
    "AtCapacity",
    "Backend",
    "DatabaseUnavailable",
    "DraftClient",
    "DraftMetrics",
    "Feed",
    "FeedEvent",
    "Forbidden",
    "InvalidInput",
    "InvalidTransition",
    "KbArticle",
    "KbHit",
    "LocalBackend",
    "NotFound",
    "Replied",
    "SessionEnded",
    "StatusCallback",
    "StoreError",
    "Taken",
    "terms",
]
