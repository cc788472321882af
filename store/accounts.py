"""Accounts: the agents and supervisors who may connect to ``tandem serve`` (DESIGN section 12).

A token is 32 random bytes (``secrets``), shown once when it is made; the store keeps its
SHA-256 only. A fast hash is enough here, and a slow KDF (bcrypt, scrypt, argon2) would buy
nothing: those slow down guessing of *low-entropy* secrets chosen by people, while a 256-bit
random token cannot be guessed at any hashing speed. The fast hash also lets a request find
its account by an indexed lookup of the hash (no per-account salt to try one by one), at a
few microseconds per request rather than the tens of milliseconds a KDF costs by design.

Names are what the feed records as ``events.actor`` and what the supervisor's list shows, so
every name that enters the store as an agent passes :func:`valid_name`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass

from store.db import Store, now
from store.errors import Forbidden, InvalidInput, NotFound

ROLES = ("agent", "supervisor")
MAX_NAME = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RESERVED = frozenset({"bot", "hub", "customer", "triage", "tandem", "system", "cli", "sim"})
"""Actor names the system itself writes into the feed; no person may hold them."""
TOKEN_PREFIX = "tdm_"


@dataclass(frozen=True, slots=True)
class Account:
    """One account, as listed (never with its token, which the store does not have)."""

    name: str
    role: str
    disabled: bool
    created_at: float
    rotated_at: float | None


def valid_name(name: object, what: str = "agent name") -> str:
    """``name`` if it is 1-32 ASCII letters, digits, ``.``, ``-`` or ``_`` (not starting
    with a punctuation mark), else :class:`InvalidInput` saying what is allowed."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{what} is empty")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{what} is too long ({len(name)} characters, limit {MAX_NAME})")
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"{what} {name[:MAX_NAME]!r} is not allowed: use letters, digits, '.', '-' or '_'"
            " (starting with a letter or digit)"
        )
    return name


def _role(role: object) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r} (agent or supervisor)")
    return str(role)


def new_token() -> str:
    """A fresh token: recognisable prefix, 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def person_name(name: object, what: str = "agent name") -> str:
    """:func:`valid_name`, and not one of the names the system writes as an actor: an agent
    called ``bot`` would make the feed say the bot did what a person did."""
    name = valid_name(name, what)
    if name.lower() in RESERVED:
        raise InvalidInput(f"{what} {name!r} is a name the system uses in the feed")
    return name


def add(store: Store, name: str, role: str) -> str:
    """Create an account; return its token (the only time it exists outside the caller).

    An agent of that name who worked in local mode keeps its history; its role becomes
    ``role``.

    :raises InvalidInput: bad name or role, or the account exists (rotate it instead)
    """
    name, role = person_name(name), _role(role)
    token = new_token()
    with store.write() as conn:
        at = now()
        if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
            raise InvalidInput(
                f"account {name} exists (tandem agent rotate {name} gives it a new token)"
            )
        conn.execute(
            "INSERT INTO agents (name, display_name, role, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET role = excluded.role",
            (name, name, role, at),
        )
        conn.execute(
            "INSERT INTO accounts (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)",
            (name, role, hash_token(token), at),
        )
    return token


def _existing(conn: sqlite3.Connection, name: str) -> None:
    if not conn.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
        raise NotFound(f"no account named {name}")


def rotate(store: Store, name: str) -> str:
    """Give an account a new token; the old one stops working with this commit."""
    name = valid_name(name)
    token = new_token()
    with store.write() as conn:
        _existing(conn, name)
        conn.execute(
            "UPDATE accounts SET token_hash = ?, rotated_at = ? WHERE name = ?",
            (hash_token(token), now(), name),
        )
    return token


def set_disabled(store: Store, name: str, disabled: bool = True) -> None:
    """Disable (or enable again) an account; a disabled token opens nothing."""
    name = valid_name(name)
    with store.write() as conn:
        _existing(conn, name)
        conn.execute(
            "UPDATE accounts SET disabled_at = ? WHERE name = ?",
            (now() if disabled else None, name),
        )


def set_role(store: Store, name: str, role: str) -> None:
    """Change an account's role (and the agent's, which the supervisor view shows)."""
    name, role = valid_name(name), _role(role)
    with store.write() as conn:
        _existing(conn, name)
        conn.execute("UPDATE accounts SET role = ? WHERE name = ?", (role, name))
        conn.execute("UPDATE agents SET role = ? WHERE name = ?", (role, name))


def list_accounts(store: Store) -> list[Account]:
    """Every account, by name."""
    return [
        Account(r[0], r[1], r[2] is not None, r[3], r[4])
        for r in store.query(
            "SELECT name, role, disabled_at, created_at, rotated_at FROM accounts ORDER BY name"
        )
    ]


def authenticate(store: Store, token: str) -> Account | None:
    """The enabled account this token opens, or ``None`` (unknown, rotated or disabled)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = store.one(
        "SELECT name, role, disabled_at, created_at, rotated_at FROM accounts"
        " WHERE token_hash = ? AND disabled_at IS NULL",
        (hash_token(token),),
    )
    return None if row is None else Account(row[0], row[1], False, row[3], row[4])


def token_is_current(store: Store, name: str, token_hash: str) -> bool:
    """Whether ``name``'s account still has this token and is enabled (an open stream asks)."""
    row = store.one(
        "SELECT 1 FROM accounts WHERE name = ? AND token_hash = ? AND disabled_at IS NULL",
        (name, token_hash),
    )
    return row is not None


# --- checks the lifecycle makes inside its own transaction --------------------------------


def check_active(conn: sqlite3.Connection, name: str) -> None:
    """Refuse a move by (or to) a disabled account; names without an account pass."""
    row = conn.execute("SELECT disabled_at FROM accounts WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] is not None:
        raise Forbidden(f"the account {name} is disabled")


def role_of(conn: sqlite3.Connection, name: str) -> str | None:
    """The role a move by ``name`` carries: the account's if it has one (``None`` when
    disabled), else the agent's (local mode), else ``None``."""
    row = conn.execute(
        "SELECT a.role, acc.role, acc.disabled_at FROM agents a"
        " LEFT JOIN accounts acc ON acc.name = a.name WHERE a.name = ?",
        (name,),
    ).fetchone()
    if row is None:
        return None
    if row[1] is not None:
        return None if row[2] is not None else str(row[1])
    return str(row[0])


def account_role(conn: sqlite3.Connection, name: str) -> str | None:
    """The role of ``name``'s account, or ``None`` when it has none."""
    row = conn.execute("SELECT role FROM accounts WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])
