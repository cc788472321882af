"""The knowledge base table (``kb_articles``) and its full-text search (``kb_fts``, FTS5 bm25;
on PostgreSQL a tsvector column and ts_rank).

Customer text is never parsed as FTS5 query syntax: :func:`match_query` keeps only word
characters, drops stop words and quotes every remaining term, so ``"``, ``*``, ``NEAR(``,
``OR``, ``-`` or ``col:`` in a message are just letters or nothing. Terms are OR-ed: bm25
ranks articles that share more (and rarer) terms with the question first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from store.db import Store, now
from store.errors import InvalidInput, NotFound

# bm25 column weights: a word in the title or tags says more about the article than the body.
WEIGHTS = (6.0, 1.0, 3.0)
MAX_TERMS = 24

STOP_WORDS = frozenset(
    """
    a about above after again all am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each few for
    from further get got had has have having he her here hers herself him himself his how
    i i'm if im in into is it its itself just let me more most my myself no nor not now of
    off on once only or other our ours out over own please same she should so some such
    than thank thanks that the their theirs them then there these they this those through
    to too under until up very was we were what when where which while who whom why will
    with would you your yours yourself hi hello hey dear ok okay yes yeah hiya sir madam
    want need know tell like just still really also one im ive dont cant its thats
    someone something anyone anything somebody anybody think thought guess maybe bit
    come came going go take theres heres whats wheres hows whos ill id youre youll youd weve
    theyre lets
    """.split()
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


@dataclass(frozen=True, slots=True)
class KbArticle:
    """One article as stored: ``tags`` is a comma-separated string."""

    id: str
    title: str
    body: str
    tags: str = ""


@dataclass(frozen=True, slots=True)
class KbHit:
    """A search result; ``score`` is bm25 (lower is better, negative for matches)."""

    id: str
    title: str
    body: str
    tags: str
    score: float


_NUMBER = re.compile(r"\d+(?:[.,]\d+)+|\d{3,}")


def terms(text: str) -> list[str]:
    """The searchable words of ``text``: lower-case, no stop words, no duplicates, in order."""
    seen: dict[str, None] = {}
    # Amounts, years and reference numbers ("£1,250", "2024", order 88231) say nothing about
    # the topic and pull in any article that happens to quote them; "pay in 3" still can.
    text = _NUMBER.sub(" ", text)
    for word in _WORD.findall(text.lower()):
        word = word.replace("'", "")
        if len(word) < 2 and not word.isdigit():
            continue
        if word in STOP_WORDS:
            continue
        seen.setdefault(word, None)
        if len(seen) >= MAX_TERMS:
            break
    return list(seen)


def match_query(text: str) -> str | None:
    """An FTS5 MATCH expression for customer text, or ``None`` when nothing is searchable.

    Each term becomes a quoted string (an FTS5 literal), so operators and punctuation in the
    text can never change the query's structure.
    """
    words = terms(text)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


def upsert_articles(store: Store, articles: Iterable[KbArticle], *, replace: bool = False) -> int:
    """Insert or update articles by id; return how many were new or changed.

    :param replace: also delete stored articles whose id is not among ``articles``
    :raises InvalidInput: an article without id, title or body, or a duplicate id
    """
    items = list(articles)
    ids: set[str] = set()
    for art in items:
        if not art.id.strip() or not art.title.strip() or not art.body.strip():
            raise InvalidInput(
                f"knowledge base article {art.id or '(no id)'} needs an id, a title and a body"
            )
        if art.id in ids:
            raise InvalidInput(f"knowledge base article id {art.id} appears twice")
        ids.add(art.id)
    changed = 0
    at = now()
    with store.write() as conn:
        for art in items:
            cur = conn.execute(
                "INSERT INTO kb_articles (id, title, body, tags, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET title = excluded.title, body = excluded.body,"
                " tags = excluded.tags, updated_at = excluded.updated_at"
                " WHERE title != excluded.title OR body != excluded.body OR tags != excluded.tags",
                (art.id, art.title, art.body, art.tags, at),
            )
            changed += cur.rowcount
        if replace:
            stale = [
                row[0] for row in conn.execute("SELECT id FROM kb_articles") if row[0] not in ids
            ]
            for article_id in stale:
                conn.execute("DELETE FROM kb_articles WHERE id = ?", (article_id,))
            changed += len(stale)
    return changed


# PostgreSQL: the same words OR-ed as a tsquery (only letters and digits reach it, so customer
# text cannot change its structure either), ranked by ts_rank over the generated column ``fts``
# (store/migrations_pg.py: title A, tags B, body C) with the same 6 : 3 : 1 weights. ts_rank is
# higher-better and bm25 lower-better: the score is negated so both read the same. Measured
# on the 12,568 Banking77 questions the KB covers (right article first, search alone / the
# console's ranker over a pool of 20): SQLite bm25 63.0% / 69.9%; ts_rank without length
# normalisation 68.9% / 72.9%, with 1 + log(length) 66.8% / 72.1%, with length 50.5% / 69.9%.
PG_WEIGHTS = "ARRAY[0.0, 1.0 / 6, 3.0 / 6, 1.0]::float4[]"
PG_NORMALIZATION = 0


def _pg_query(query: str) -> str | None:
    words = terms(query)
    return " | ".join(words) if words else None


def _pg_search(store: Store, query: str, limit: int, columns: str) -> list[Any]:
    expression = _pg_query(query)
    if expression is None or limit <= 0:
        return []
    return store.query(
        f"SELECT {columns}, -ts_rank({PG_WEIGHTS}, a.fts, q, {PG_NORMALIZATION}) AS score"
        " FROM kb_articles a, to_tsquery('english', ?) q WHERE a.fts @@ q"
        " ORDER BY score, a.id LIMIT ?",
        (expression, limit),
    )


def search(store: Store, query: str, limit: int = 5) -> list[KbHit]:
    """The articles that best match ``query`` (any text; customer text is safe), best first."""
    if store.backend == "postgresql":
        found = _pg_search(store, query, limit, "a.id, a.title, a.body, a.tags")
        return [KbHit(r[0], r[1], r[2], r[3], float(r[4])) for r in found]
    expression = match_query(query)
    if expression is None or limit <= 0:
        return []
    rows = store.query(
        "SELECT a.id, a.title, a.body, a.tags, bm25(kb_fts, ?, ?, ?) AS score"
        " FROM kb_fts JOIN kb_articles a ON a.rowid = kb_fts.rowid"
        " WHERE kb_fts MATCH ? ORDER BY score LIMIT ?",
        (*WEIGHTS, expression, limit),
    )
    return [KbHit(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def search_scores(store: Store, query: str, limit: int = 5) -> list[tuple[str, float]]:
    """:func:`search` without the articles' text: ``(id, bm25)`` pairs, best first.

    For a caller that holds the articles already (the ranker's index): no bodies to read.
    """
    if store.backend == "postgresql":
        return [(str(r[0]), float(r[1])) for r in _pg_search(store, query, limit, "a.id")]
    expression = match_query(query)
    if expression is None or limit <= 0:
        return []
    rows = store.query(
        "SELECT a.id, bm25(kb_fts, ?, ?, ?) AS score"
        " FROM kb_fts JOIN kb_articles a ON a.rowid = kb_fts.rowid"
        " WHERE kb_fts MATCH ? ORDER BY score LIMIT ?",
        (*WEIGHTS, expression, limit),
    )
    return [(str(r[0]), float(r[1])) for r in rows]


def get(store: Store, article_id: str) -> KbArticle:
    """One article by id.

    :raises NotFound: no such article
    """
    row = store.one("SELECT id, title, body, tags FROM kb_articles WHERE id = ?", (article_id,))
    if row is None:
        raise NotFound(f"knowledge base article {article_id} not found")
    return KbArticle(row[0], row[1], row[2], row[3])


def all_articles(store: Store) -> list[KbArticle]:
    """Every article, by id."""
    return [
        KbArticle(r[0], r[1], r[2], r[3])
        for r in store.query("SELECT id, title, body, tags FROM kb_articles ORDER BY id")
    ]


def stored_order(store: Store) -> list[KbArticle]:
    """Every article, in the order the full-text index holds them (rowid; id on PostgreSQL).

    :class:`store.kb_bm25.Bm25Index` built from this list breaks equal scores as FTS5 does.
    """
    order = "id" if store.backend == "postgresql" else "rowid"
    return [
        KbArticle(r[0], r[1], r[2], r[3])
        for r in store.query(f"SELECT id, title, body, tags FROM kb_articles ORDER BY {order}")
    ]


def count(store: Store) -> int:
    """How many articles are stored."""
    row = store.one("SELECT count(*) FROM kb_articles")
    return int(row[0]) if row else 0


def version(store: Store) -> tuple[int, float]:
    """What changes whenever the articles do: their count and the newest ``updated_at``.

    An upsert stamps what it changed and a replace changes the count, so a cached index of
    the articles is stale exactly when this differs from what it was built at.
    """
    row = store.one("SELECT count(*), coalesce(max(updated_at), 0) FROM kb_articles")
    return (int(row[0]), float(row[1])) if row else (0, 0.0)


def article_ids(store: Store) -> set[str]:
    """The ids of every stored article."""
    return {str(r[0]) for r in store.query("SELECT id FROM kb_articles")}
