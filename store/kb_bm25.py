"""SQLite FTS5's bm25 over the knowledge base, computed in this process: no query per search.

The embedded bot searches the knowledge base for nearly every customer message; one SQL
search cost about as much as the rest of its answer. :class:`Bm25Index` reads the articles'
tokens once (through FTS5 itself, in an in-memory SQLite database) and scores a question the
way FTS5's ``bm25()`` does, operation for operation, so the scores are the same floats and the
order the same (ties by rowid, as the full-text index returns them): on all 21,186 real
messages of ``../shared/data/customer-messages.csv`` the pools of 3 and of 20 were identical to
:func:`store.kb.search_scores` on SQLite. On PostgreSQL it ranks as SQLite does, where the
server's own search (``ts_rank``) ranks differently.

A question's words are tokenized as FTS5 does (``porter unicode61``): ASCII words by
:func:`store.kb_porter.porter`, others by FTS5 itself (an in-memory table), each once per
process; :class:`Bm25Index` caches what each word adds to each article.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from store.kb_porter import porter

if TYPE_CHECKING:
    from store.kb import KbArticle

# FTS5's bm25 constants (fts5_aux.c).
_K1 = 1.2
_B = 0.75
_COLUMNS = ("title", "body", "tags")
_TOKENIZE = "porter unicode61"  # as kb_fts (store/migrations.py)
_CACHE_WORDS = 65536


class _Tokenizer:
    """FTS5's tokenizer for single words, through an in-memory table; words are cached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._cache: dict[str, tuple[str, ...]] = {}

    def tokens(self, word: str) -> tuple[str, ...]:
        found = self._cache.get(word)
        if found is not None:
            return found
        if word.isascii() and word.isalnum():
            # unicode61 makes one lower-case token of ASCII letters and digits; its stem in
            # Python costs a twentieth of asking SQLite.
            return (porter(word.lower()),)
        with self._lock:
            conn = self._conn
            if conn is None:
                conn = sqlite3.connect(":memory:", check_same_thread=False)
                conn.execute(f"CREATE VIRTUAL TABLE w USING fts5(x, tokenize='{_TOKENIZE}')")
                conn.execute("CREATE VIRTUAL TABLE wv USING fts5vocab(w, instance)")
                self._conn = conn
            conn.execute("INSERT INTO w(rowid, x) VALUES (1, ?)", (word,))
            found = tuple(str(r[0]) for r in conn.execute("SELECT term FROM wv ORDER BY offset"))
            conn.execute("DELETE FROM w")
            if len(self._cache) >= _CACHE_WORDS:
                self._cache.clear()  # a bound, not an LRU: real traffic reuses a few thousand words
            self._cache[word] = found
        return found


_TOKENIZER = _Tokenizer()


def fts_tokens(word: str) -> tuple[str, ...]:
    """The tokens FTS5 (``porter unicode61``) makes of ``word``: usually one stem, sometimes none."""
    return _TOKENIZER.tokens(word)


class Bm25Index:
    """The articles' tokens, and per token what it adds to an article's bm25.

    :param articles: every article, in the order the store's full-text index holds them
        (:func:`store.kb.stored_order`): equal scores come out in this order
    :param weights: the title, body and tags column weights (:data:`store.kb.WEIGHTS`)
    """

    def __init__(self, articles: Sequence[KbArticle], weights: Sequence[float]) -> None:
        self.ids = tuple(a.id for a in articles)
        # token -> article number -> [(column, offset)], for phrases of several tokens.
        self._positions: dict[str, dict[int, list[tuple[int, int]]]] = {}
        # token -> article number -> weighted count (what bm25 calls the phrase frequency).
        self._freq: dict[str, dict[int, float]] = {}
        lengths = [0] * len(articles)
        conn = sqlite3.connect(":memory:")
        try:
            conn.execute(
                f"CREATE VIRTUAL TABLE a USING fts5({', '.join(_COLUMNS)}, tokenize='{_TOKENIZE}')"
            )
            conn.executemany(
                "INSERT INTO a(rowid, title, body, tags) VALUES (?, ?, ?, ?)",
                [(n, art.title, art.body, art.tags) for n, art in enumerate(articles)],
            )
            conn.execute("CREATE VIRTUAL TABLE av USING fts5vocab(a, instance)")
            rows = conn.execute("SELECT term, doc, col, offset FROM av").fetchall()
        finally:
            conn.close()
        column = {name: i for i, name in enumerate(_COLUMNS)}
        for term, doc, col, offset in rows:
            c = column[col]
            self._positions.setdefault(term, {}).setdefault(doc, []).append((c, offset))
            per_doc = self._freq.setdefault(term, {})
            per_doc[doc] = per_doc.get(doc, 0.0) + weights[c]
            lengths[doc] += 1
        self._weights = tuple(weights)
        self._lengths = lengths
        self._rows = len(articles)
        self._avgdl = sum(lengths) / self._rows if self._rows else 1.0
        # A one-token phrase (nearly every question word) adds the same to an article's score
        # in every question: computed once.
        self._single: dict[str, dict[int, float]] = {
            term: self._contributions(per_doc) for term, per_doc in self._freq.items()
        }
        self._by_word: dict[str, dict[int, float]] = {}

    def _contributions(self, freq: dict[int, float]) -> dict[int, float]:
        """What a phrase matching ``freq`` (article -> weighted count) adds to each score."""
        hits = len(freq)
        # fts5Bm25Function: the same operations in the same order, so the same doubles.
        idf = math.log((self._rows - hits + 0.5) / (hits + 0.5))
        if idf <= 0.0:
            idf = 1e-6
        avgdl = self._avgdl
        return {
            doc: idf
            * ((f * (_K1 + 1.0)) / (f + _K1 * (1 - _B + _B * float(self._lengths[doc]) / avgdl)))
            for doc, f in freq.items()
        }

    def _phrase(self, tokens: tuple[str, ...]) -> dict[int, float]:
        """Article -> weighted count of ``tokens`` appearing consecutively in one column."""
        first = self._positions.get(tokens[0], {})
        out: dict[int, float] = {}
        for doc, starts in first.items():
            for col, offset in starts:
                if all(
                    (col, offset + k) in self._positions.get(tok, {}).get(doc, ())
                    for k, tok in enumerate(tokens[1:], 1)
                ):
                    out[doc] = out.get(doc, 0.0) + self._weights[col]
        return out

    def search(self, words: Sequence[str], limit: int) -> list[tuple[str, float]]:
        """``(id, bm25)`` of the best ``limit`` articles for ``words`` OR-ed, best first.

        What :func:`store.kb.search_scores` returns on SQLite for the same words.
        """
        if limit <= 0 or not self._rows:
            return []
        scores: dict[int, float] = {}
        by_word = self._by_word
        for word in words:
            added = by_word.get(word)
            if added is None:
                added = self._of_word(word)
            # In the order of the question's phrases, as FTS5 sums them.
            for doc, value in added.items():
                scores[doc] = scores.get(doc, 0.0) + value
        # Best first; equal scores in the index's order (the doc number), as FTS5 returns them.
        best = sorted([(-score, doc) for doc, score in scores.items()])[:limit]
        return [(self.ids[doc], negated) for negated, doc in best]

    def _of_word(self, word: str) -> dict[int, float]:
        """What the phrase ``word`` adds to each article's score (cached per word)."""
        tokens = fts_tokens(word)
        if len(tokens) == 1:
            added = self._single.get(tokens[0], {})
        elif tokens:
            added = self._contributions(self._phrase(tokens))
        else:
            added = {}  # an empty phrase matches nothing
        if len(self._by_word) >= _CACHE_WORDS:
            self._by_word.clear()
        self._by_word[word] = added
        return added
