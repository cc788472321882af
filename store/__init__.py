"""Tandem's store: SQLite persistence, the conversation lifecycle and the change feed.

Imports nothing from ``console``. Typical use::

    from store import Store, lifecycle
    store = Store("tandem.db")
    cid = lifecycle.open_conversation(store, "Maya")
    lifecycle.add_customer_message(store, cid, "hi", idempotency_key="m1")
"""

from store.db import Store, open_store, resolve_path
from store.errors import (
    AlreadyAnswered,
    DatabaseUnavailable,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotOwner,
    StoreError,
    Taken,
)

__all__ = [
    "AlreadyAnswered",
    "DatabaseUnavailable",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "NotOwner",
    "Store",
    "StoreError",
    "Taken",
    "open_store",
    "resolve_path",
]
