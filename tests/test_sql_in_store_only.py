"""SQL lives in store/ only (DESIGN section 7): the hub, the UI and the APIs call store functions.

A second backend (PostgreSQL) can then implement the store's functions and nothing else. The
check reads every .py file outside store/ (and tests/, which inspect the SQLite file directly
on purpose, as an independent witness of the store's invariants) with ``ast``: string literals
that are SQL statements, and calls that run SQL on a connection. Docstrings and comments may
talk about SQL; code may not hold it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = {"store", "tests"}  # and hidden folders (.venv, .git)

_TABLES = (
    r"(customers|conversations|messages|events|agents|drafts|kb_articles|kb_fts|cursors"
    r"|_tandem_migrations|sqlite_\w+|pragma_\w+)"
)
# Statement shapes, each specific enough that English prose does not take it ("select a
# conversation from the wall", "insert into the composer", "delete the draft" pass).
_SQL = [
    # An upper-case keyword opening a literal: how every statement in this code base starts.
    re.compile(
        r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|WITH|BEGIN|COMMIT"
        r"|ROLLBACK|SAVEPOINT|VACUUM|ANALYZE|ATTACH|EXPLAIN)(\s|$)"
    ),
    re.compile(r"\bSELECT\b[\s\S]*\bFROM\b"),
    re.compile(rf"\bselect\b[\s\S]*?\bfrom\s+{_TABLES}\b", re.I),
    re.compile(r"\binsert\s+(or\s+\w+\s+)?into\s+[\w.]+\s*(\(|values\b|select\b|default\s)", re.I),
    re.compile(r"\bdelete\s+from\s+[\w.]+\s*(where\b|;|$)", re.I),
    re.compile(r"\bupdate\s+[\w.]+\s+set\s+[\w.]+\s*=", re.I),
    re.compile(r"\bpragma\s+\w+\s*(=|\(|;|$)", re.I),
    re.compile(
        r"\b(create|drop)\s+(temp(orary)?\s+|unique\s+|virtual\s+)?(table|index|view|trigger)\s+"
        r"(if\s+(not\s+)?exists\s+)?[\w.]+",
        re.I,
    ),
    re.compile(r"\balter\s+table\s+[\w.]+", re.I),
    # Fragments: a condition or an order kept apart from its statement is SQL too.
    re.compile(
        r"\b(WHERE|AND|OR|ON)\s+\(?[a-z_][\w.]*\s*(=|!=|<>|<=|>=|<|>|IN\b|IS\b|NOT\b|LIKE\b)"
    ),
    re.compile(r"\b[a-z_][\w.]*\s+(NOT\s+)?IN\s*\(\s*('|\?)"),
    re.compile(r"\b(ORDER|GROUP)\s+BY\s+[a-z_]"),
    re.compile(r"\b[a-z_][\w.]*\s*(=|!=|<>|<=|>=|<|>)\s*\?"),  # a column against a parameter
    re.compile(
        r"\bwith\s+(recursive\s+)?\w+(\s*\([\w\s,]*\))?\s+as\s*\(\s*(select|values)\b", re.I
    ),
]
_RUNS_SQL = {"execute", "executemany", "executescript"}


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _literals(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal's text with its line; an f-string is one text, ``{}`` for its holes."""
    skip = _docstrings(tree)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                skip.add(id(value))
                is_text = isinstance(value, ast.Constant) and isinstance(value.value, str)
                parts.append(value.value if is_text else "{}")  # type: ignore[union-attr]
            out.append((node.lineno, "".join(parts)))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            out.append((node.lineno, node.value))
    return out


def sql_in(source: str, name: str = "<sample>") -> list[str]:
    """Where ``source`` holds or runs SQL: ``name:line: text`` for each place."""
    tree = ast.parse(source, filename=name)
    found = [
        f"{name}:{line}: {text.strip()[:80]!r}"
        for line, text in _literals(tree)
        if any(p.search(text) for p in _SQL)
    ]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, owner = node.func.attr, node.func.value
        if attr in _RUNS_SQL or (
            attr == "connect" and isinstance(owner, ast.Name) and owner.id == "sqlite3"
        ):
            found.append(f"{name}:{node.lineno}: .{attr}(...)")
    return found


def _sources() -> list[Path]:
    return sorted(
        p
        for p in ROOT.rglob("*.py")
        if (rel := p.relative_to(ROOT)).parts[0] not in SKIPPED
        and not any(part.startswith(".") for part in rel.parts)
    )


def test_no_sql_outside_the_store() -> None:
    files = _sources()
    assert any(p.parts[-2:] == ("hub", "core.py") for p in files)  # the walk found the code
    offenders = [
        hit
        for p in files
        for hit in sql_in(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))
    ]
    assert offenders == [], "SQL outside store/ (add a store function instead):\n" + "\n".join(
        offenders
    )


def test_the_store_itself_is_found_full_of_sql() -> None:
    # The detector sees real statements: every module of store/ that talks to SQLite.
    for name in ("lifecycle", "queries", "hub_state", "queue", "sla", "feed", "kb", "bulk"):
        path = ROOT / "store" / f"{name}.py"
        assert sql_in(path.read_text(encoding="utf-8"), name), f"nothing found in store/{name}.py"


@pytest.mark.parametrize(
    "code",
    [
        'cur.execute("SELECT id FROM messages")',
        'rows = store.query("SELECT id, role FROM messages WHERE conversation_id = ?", (cid,))',
        "row = store.one(\"select count(*) from conversations where state = 'waiting'\")",
        'sql = (\n    "SELECT c.id"\n    " FROM conversations c WHERE c.state = ?"\n)',
        'sql = f"SELECT {cols} FROM conversations WHERE id IN ({marks})"',
        'sql = f"UPDATE {table} SET level = ? WHERE id = ?"',
        'Q = "  insert into events (at, kind) values (?, ?)"',
        'Q = "DELETE FROM drafts WHERE id = ?"',
        'Q = "with x as (select 1) select * from x"',
        'Q = "PRAGMA journal_mode = WAL"',
        'Q = "create index if not exists e on events(kind)"',
        'Q = "BEGIN IMMEDIATE"',
        "SETTLED = \"(kind IN ('handed_back', 'released') OR (kind = 'resolved'))\"",
        'where.append("c.owner = ?")',
        "sql += \" AND role != 'note' ORDER BY id DESC LIMIT ?\"",
        'def f(s):\n    return s.query("SELECT name FROM agents")',
        "conn = sqlite3.connect(path)",
        "db.executemany(sql, rows)",
        "store.conn.executescript(script)",
    ],
)
def test_the_check_catches_planted_sql(code: str) -> None:
    assert sql_in(code), f"not caught: {code!r}"


@pytest.mark.parametrize(
    "code",
    [
        '"""The hub reads SELECT ... FROM messages through store functions."""',
        'def f():\n    """UPDATE conversations SET state: what escalate does."""\n    return 1',
        "x = 1  # SELECT id FROM messages WHERE id = ?",
        'HELP = "Select a conversation from the wall and press enter"',
        'HELP = "enter: insert into the composer at the cursor"',
        'NOTE = "Delete from your device any codes you were sent"',
        'SAY = "Please update your app; set a new PIN"',
        'TITLE = "Create a table of agents"',
        'self.query_one("#composer")',
        'app.query("Tile").first()',
    ],
)
def test_the_check_lets_prose_docstrings_and_comments_be(code: str) -> None:
    assert sql_in(code) == []
