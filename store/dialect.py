"""The store's SQL, written for SQLite, said to PostgreSQL.

Why one dialect-translating layer instead of every query written twice: the store has a few
hundred statements and all but a handful are plain SQL both engines read alike. What differs
is small and mechanical (placeholders, ``INSERT OR IGNORE``, ``IS [NOT] ?``, two-argument
``max``, ``json_extract``/``json_set``, the new row's id), so one rewrite here keeps a single
copy of each query, and a new query written for SQLite runs on PostgreSQL the day it lands.
Where the engines really differ (full-text search, integrity checks, change notification,
the schema itself) the store has per-backend code instead (store/pg.py, store/migrations_pg.py,
store/kb.py's search).

Every rewrite is anchored on SQL the store writes (no general SQL parser); a statement this
does not understand reaches PostgreSQL unchanged and fails loudly, never silently.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Keys of JSON documents the store reads as booleans (SQLite's json_extract gives 0/1 for
# true/false, PostgreSQL's ->> gives the text 'true') or as numbers (compared with a number,
# or the max of times): everything else is read as text.
_JSON_BOOLEAN_KEYS = frozenset({"abusive"})
_JSON_NUMBER_KEYS = frozenset({"until", "reopened"})

_STRING = re.compile(r"'(?:[^']|'')*'")
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)
_JSON_EXTRACT = re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*'\$\.(\w+)'\s*\)", re.IGNORECASE)
_JSON_SET = re.compile(
    r"json_set\(\s*(coalesce\(\s*[\w.]+\s*,\s*'\{\}'\s*\)|[\w.]+)\s*,\s*'\$\.(\w+)'\s*,"
    r"\s*json\(\?\)\s*\)",
    re.IGNORECASE,
)
_IS_NOT = re.compile(r"\bIS\s+NOT\s+(?!NULL\b|TRUE\b|FALSE\b|DISTINCT\b)", re.IGNORECASE)
_IS = re.compile(r"\bIS\s+(?!NOT\b|NULL\b|TRUE\b|FALSE\b|DISTINCT\b)", re.IGNORECASE)
_PARAM_IS_NULL = re.compile(r"\?(\s+IS\s+(?:NOT\s+)?NULL\b)", re.IGNORECASE)
_SCALAR_MINMAX = re.compile(r"\b(max|min)\(\s*([\w.]+)\s*,\s*([\w.]+)\s*\)", re.IGNORECASE)
_CAST_INTEGER = re.compile(r"CAST\(([^()]+)\s+AS\s+INTEGER\)", re.IGNORECASE)
_ON_CONFLICT = re.compile(r"\bON\s+CONFLICT\b", re.IGNORECASE)

#: The advisory lock an event's insert takes before drawing its id (store/pg.py explains why).
FEED_LOCK = 0x54616E64656E
_EVENT_INSERT = re.compile(
    r"^(\s*INSERT\s+INTO\s+events\s*\()([^)]*\)\s*VALUES\s*\()", re.IGNORECASE
)
# The id of a new event, drawn only once this transaction holds the feed lock (then held to
# its commit), so ids become visible in the order they were drawn. A materialized CTE is
# always run before the select that reads it; the column's own default would be drawn
# before any lock could be taken.
_EVENT_ID = (
    f"(WITH feed_lock AS MATERIALIZED (SELECT pg_advisory_xact_lock({FEED_LOCK}))"
    " SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM feed_lock)"
)


def _event_id(sql: str) -> str:
    """An ``INSERT INTO events (...) VALUES (...)`` that names no id draws it under the feed
    lock; one that gives its own ids (``db copy``) is left alone."""
    match = _EVENT_INSERT.match(sql)
    if match is None or re.search(r"\bid\b", match.group(2).split(")", 1)[0], re.IGNORECASE):
        return sql
    return f"{match.group(1)}id, {match.group(2)}{_EVENT_ID}, {sql[match.end() :]}"


_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def _json_extract(match: re.Match[str]) -> str:
    column, key = match.group(1), match.group(2)
    if key in _JSON_BOOLEAN_KEYS:
        return f"(({column})::jsonb -> '{key}')::boolean"
    if key in _JSON_NUMBER_KEYS:
        return f"(({column})::jsonb ->> '{key}')::double precision"
    return f"(({column})::jsonb ->> '{key}')"


def _json_set(match: re.Match[str]) -> str:
    return (
        f"(({match.group(1)})::jsonb || jsonb_build_object('{match.group(2)}', (?)::jsonb))::text"
    )


_SUBQUERY = re.compile(r"\b(?:FROM|JOIN)\s*\(\s*SELECT\b", re.IGNORECASE)
_ALIAS_NEXT = re.compile(
    r"\s*(?:AS\b|(?!(?:WHERE|GROUP|ORDER|LIMIT|UNION|EXCEPT|JOIN|LEFT|ON)\b)[A-Za-z_])",
    re.IGNORECASE,
)


def _alias_subqueries(sql: str) -> str:
    """PostgreSQL (before 16) wants a name for every subquery in FROM; SQLite does not."""
    out: list[str] = []
    pos = 0
    for n, match in enumerate(_SUBQUERY.finditer(sql)):
        if match.start() < pos:
            continue
        depth, first = 0, sql.index("(", match.start())
        i = first
        for i in range(first, len(sql)):
            if sql[i] == "(":
                depth += 1
            elif sql[i] == ")":
                depth -= 1
                if depth == 0:
                    break
        out.append(sql[pos : i + 1])
        pos = i + 1
        if not _ALIAS_NEXT.match(sql, pos):
            out.append(f" AS _sub{n}")
    out.append(sql[pos:])
    return "".join(out)


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_DO_UPDATE = re.compile(r"\bDO\s+UPDATE\s+SET\b", re.IGNORECASE)
_BARE = re.compile(r"(?<![.\w])([A-Za-z_]\w*)\b(?!\s*[.(])")
_KEYWORDS = frozenset(
    "and or not null is distinct from case when then else end true false in like where"
    " between excluded".split()
)


def _qualify(expr: str, table: str) -> str:
    def one(m: re.Match[str]) -> str:
        word = m.group(1)
        return word if word.lower() in _KEYWORDS else f"{table}.{word}"

    out, pos = [], 0
    for lit in _STRING.finditer(expr):
        out.append(_BARE.sub(one, expr[pos : lit.start()]))
        out.append(lit.group(0))
        pos = lit.end()
    out.append(_BARE.sub(one, expr[pos:]))
    return "".join(out)


def _upsert_columns(sql: str, table: str) -> str:
    """In ``ON CONFLICT ... DO UPDATE``, a bare column is the existing row's (SQLite reads it
    so); PostgreSQL calls it ambiguous beside ``excluded``, so it is named with its table."""
    match = _DO_UPDATE.search(sql)
    if match is None:
        return sql
    head, rest = sql[: match.end()], sql[match.end() :]
    where = re.search(r"\bWHERE\b", rest, re.IGNORECASE)
    sets, cond = (rest[: where.start()], rest[where.start() :]) if where else (rest, "")
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(sets):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(sets[start:i])
            start = i + 1
    parts.append(sets[start:])
    assigned = []
    for part in parts:
        column, _, expr = part.partition("=")
        assigned.append(f"{column}={_qualify(expr, table)}")
    return head + ",".join(assigned) + _qualify(cond, table)


def _code(part: str) -> str:
    """Rewrites of SQL outside string literals (where a word like ``is`` is only text)."""
    part = _PARAM_IS_NULL.sub(r"CAST(? AS TEXT)\1", part)
    part = _IS_NOT.sub("IS DISTINCT FROM ", part)
    part = _IS.sub("IS NOT DISTINCT FROM ", part)
    part = part.replace("%", "%%").replace("?", "%s")
    return _NAMED.sub(r"%(\1)s", part)


def _placeholders(sql: str) -> str:
    """``?`` -> ``%s`` and ``IS [NOT] ?`` outside string literals; ``%`` doubled for psycopg."""
    out: list[str] = []
    pos = 0
    for match in _STRING.finditer(sql):
        out.append(_code(sql[pos : match.start()]))
        out.append(match.group(0).replace("%", "%%"))
        pos = match.end()
    out.append(_code(sql[pos:]))
    return "".join(out)


class Translated:
    """One statement in PostgreSQL's words, and what the caller of ``execute`` expects back.

    :ivar sql: the statement for psycopg (``%s`` placeholders)
    :ivar id_table: the table whose new row's id ``lastrowid`` must give (``RETURNING id``
        was added), or ``None``
    :ivar conflict_is_error: ``ON CONFLICT DO NOTHING`` was added to an insert that SQLite
        would fail with a constraint error: no returned row means that error (the
        transaction stays usable, as SQLite's does)
    """

    __slots__ = ("conflict_is_error", "id_table", "sql")

    def __init__(self, sql: str, id_table: str | None, conflict_is_error: bool) -> None:
        self.sql = sql
        self.id_table = id_table
        self.conflict_is_error = conflict_is_error


@lru_cache(maxsize=4096)
def translate(sql: str, id_tables: frozenset[str] = frozenset()) -> Translated:
    """``sql`` as the store writes it (SQLite) rewritten for PostgreSQL.

    :param id_tables: tables with an integer ``id`` the database assigns: an ``INSERT`` into
        one returns the new id (``lastrowid``) and reports a unique-index conflict as an
        ``IntegrityError`` without aborting the transaction
    """
    text = _event_id(sql.strip().rstrip(";"))
    ignore = False
    if _INSERT_OR_IGNORE.match(text):
        text = _INSERT_OR_IGNORE.sub("INSERT INTO", text, count=1)
        ignore = True
    text = _JSON_SET.sub(_json_set, text)
    text = _JSON_EXTRACT.sub(_json_extract, text)
    text = _SCALAR_MINMAX.sub(
        lambda m: (
            f"{'GREATEST' if m.group(1).lower() == 'max' else 'LEAST'}({m.group(2)}, {m.group(3)})"
        ),
        text,
    )
    text = _CAST_INTEGER.sub(r"CAST(trunc(\1) AS BIGINT)", text)
    text = _alias_subqueries(text)
    id_table: str | None = None
    conflict_is_error = False
    insert = _INSERT_INTO.match(text)
    if insert:
        text = _upsert_columns(text, insert.group(1))
    if insert and not _RETURNING.search(text):
        table = insert.group(1).lower()
        has_conflict = ignore or bool(_ON_CONFLICT.search(text))
        if ignore:
            text += " ON CONFLICT DO NOTHING"
        if table in id_tables:
            if not has_conflict and " SELECT " not in text.upper():
                text += " ON CONFLICT DO NOTHING"
                conflict_is_error = True
            text += " RETURNING id"
            id_table = table
    elif ignore:
        text += " ON CONFLICT DO NOTHING"
    return Translated(_placeholders(text), id_table, conflict_is_error)


def ddl(script: str) -> str:
    """A portable migration's SQL (CREATE TABLE / ADD COLUMN / CREATE INDEX) for PostgreSQL.

    SQLite's ``INTEGER`` is 64 bits and ``REAL`` a double: PostgreSQL's names for them.
    ``INTEGER PRIMARY KEY`` is SQLite's rowid alias, assigned by the database.
    """
    text = re.sub(
        r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        script,
        flags=re.IGNORECASE,
    )
    text = re.sub(r"\bINTEGER\b", "BIGINT", text, flags=re.IGNORECASE)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", text, flags=re.IGNORECASE)
