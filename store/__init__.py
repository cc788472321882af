"""Tandem's store: SQLite persistence, the conversation lifecycle and the change feed.

Imports nothing from ``console``. Typical use::

    from store import Store, lifecycle
    store = Store("tandem.db")
    cid = lifecycle.open_conversation(store, "Maya")
    lifecycle.add_customer_message(store, cid, "hi", idempotency_key="m1")

``Store``, ``open_store``, ``open_reader`` and ``resolve_path`` load on first use: the pure parts of the
console (the triage engine, the policy) read the store's vocabulary (``store.levels``)
without paying for sqlite-utils, which ``tandem triage`` never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from store.errors import (
    AlreadyAnswered,
    Damaged,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotOwner,
    ReadOnly,
    StoreError,
    Taken,
)

if TYPE_CHECKING:
    from store.db import Store, open_reader, open_store, resolve_path

__all__ = [
    "AlreadyAnswered",
    "Damaged",
    "DatabaseUnavailable",
    "Forbidden",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "NotOwner",
    "ReadOnly",
    "Store",
    "StoreError",
    "Taken",
    "open_reader",
    "open_store",
    "resolve_path",
]

_FROM_DB = ("Store", "open_reader", "open_store", "resolve_path")


def __getattr__(name: str) -> Any:
    if name in _FROM_DB:
        return getattr(importlib.import_module("store.db"), name)
    raise AttributeError(f"module 'store' has no attribute {name!r}")
