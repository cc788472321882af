"""Errors shared by the entry points and the layers below them."""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments or input that the user can fix; printed as one line."""
