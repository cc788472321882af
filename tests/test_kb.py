"""The knowledge base: bundled articles, loading, FTS5 search that customer text cannot break."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.kb import (
    ARTICLES_DIR,
    ArticleError,
    ensure_loaded,
    load_bundled,
    load_dir,
    parse_markdown,
    read_dir,
    split_body,
)
from store import NotFound, Store
from store.kb import KbArticle, count, get, match_query, search, terms, upsert_articles


@pytest.fixture
def kb_store(store: Store) -> Store:
    ensure_loaded(store)
    return store


def test_bundled_articles_are_valid_and_many() -> None:
    articles = read_dir(ARTICLES_DIR)
    assert len(articles) >= 40
    ids = [a.id for a in articles]
    assert len(set(ids)) == len(ids)
    for art in articles:
        parts = split_body(art)
        assert parts.summary, art.id
        assert parts.facts, art.id
        assert parts.tags, art.id


def test_ensure_loaded_is_idempotent(store: Store) -> None:
    assert count(store) == 0
    n = ensure_loaded(store)
    assert n >= 40 and count(store) == n
    assert ensure_loaded(store) == n
    assert load_bundled(store) == 0  # nothing changed


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How does pay in 3 work?", "KB-001"),
        ("I missed my instalment, will I be charged a late fee?", "KB-002"),
        ("why was my card declined at the supermarket", "KB-010"),
        ("I think I lost my card on the bus", "KB-008"),
        ("I forgot my PIN", "KB-009"),
        ("how long does a refund take to come back", "KB-016"),
        ("someone scammed me and I sent them £900", "KB-027"),
        ("my husband passed away last week, what happens to his account", "KB-030"),
        ("I want to make a formal complaint", "KB-031"),
        ("how do I close my account", "KB-032"),
        ("I sent money to the wrong account by mistake", "KB-014"),
        ("can I freeze my card for a bit", "KB-007"),
        ("I can't afford my payments this month, I lost my job", "KB-029"),
        ("is my money protected by the FSCS", "KB-039"),
        ("I want to talk to a real person", "KB-042"),
        ("what documents do you need to verify my identity", "KB-025"),
        ("the shop never delivered my order and won't answer, can I get a chargeback", "KB-017"),
        ("there is a payment I don't recognise on my account", "KB-019"),
        ("I paid off my plan but you took another instalment", "KB-054"),
        # An amount is not a topic: "250" must not pull in the article that mentions "up to £250".
        ("the payment to pixel arcade for £1,250 I don't recognise", "KB-019"),
    ],
)
def test_search_finds_the_right_article(kb_store: Store, question: str, expected: str) -> None:
    hits = search(kb_store, question, limit=3)
    assert hits, question
    assert hits[0].id == expected, [(h.id, h.title) for h in hits]


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '""',
        "card*",
        "*",
        "NEAR(card pin",
        "card OR",
        "OR",
        "AND NOT",
        "-freeze",
        "title:pin",
        "card NEAR/3 pin",
        "^start",
        "a + b",
        "(((",
        "'; DROP TABLE kb_articles; --",
        "{title body}: x",
        "ñandú ünïcode 卡",
        "\x00\x1b[31m red",
        "a" * 5000,
    ],
)
def test_fts_syntax_in_customer_text_never_errors(kb_store: Store, text: str) -> None:
    hits = search(kb_store, text)
    assert isinstance(hits, list)
    assert count(kb_store) >= 40


def test_match_query_quotes_every_term() -> None:
    assert match_query('my card "NEAR(pin" OR*') == '"card" OR "near" OR "pin"'
    assert match_query("hi, thanks!") is None
    assert "the" not in terms("the card and the pin")
    assert terms("pay in 3 for £1,250, order 88231 from 2024") == ["pay", "3", "order"]


def test_get_and_not_found(kb_store: Store) -> None:
    art = get(kb_store, "KB-009")
    assert "PIN" in art.title
    with pytest.raises(NotFound):
        get(kb_store, "KB-999")


def test_upsert_updates_and_replaces(store: Store, tmp_path: Path) -> None:
    a = KbArticle("X-1", "Lemon cards", "Lemon cards are yellow.", "lemon")
    b = KbArticle("X-2", "Plum fees", "Plum fees are purple.", "plum")
    assert upsert_articles(store, [a, b]) == 2
    assert upsert_articles(store, [a, b]) == 0
    assert (
        upsert_articles(store, [KbArticle("X-1", "Lime cards", "Lime cards are green.", "lime")])
        == 1
    )
    assert [h.id for h in search(store, "lime")] == ["X-1"]
    assert search(store, "lemon") == []  # the FTS index followed the update
    assert upsert_articles(store, [b], replace=True) == 1
    assert count(store) == 1


def test_parse_errors(tmp_path: Path) -> None:
    with pytest.raises(ArticleError):
        parse_markdown("no front matter", "x.md")
    with pytest.raises(ArticleError):
        parse_markdown("---\ntitle: t\n---\nbody", "x.md")
    (tmp_path / "a.md").write_text(
        "---\nid: Z-1\ntitle: Zed\ntags: z, zz\n---\nZed summary.\n\n- fact one\n"
    )
    parsed = split_body(read_dir(tmp_path)[0])
    assert (
        parsed.summary == "Zed summary."
        and parsed.facts == ("fact one",)
        and parsed.tags == ("z", "zz")
    )
    with pytest.raises(ArticleError):
        read_dir(tmp_path / "missing")


def test_cli_load_and_search(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    run = [sys.executable, "-c", "import sys; from console.cli import main; sys.exit(main())"]
    out = subprocess.run(
        [*run, "kb", "load", "--db", str(db)], capture_output=True, text=True, check=True
    )
    assert "in the knowledge base" in out.stdout
    out = subprocess.run(
        [*run, "kb", "search", "--db", str(db), "lost", "my", "card"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines()[0].startswith("KB-008")
    out = subprocess.run(
        [*run, "kb", "show", "KB-009", "--db", str(db)], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("KB-009  Your PIN") and "Show PIN" in out.stdout
    missing = subprocess.run(
        [*run, "kb", "show", "KB-999", "--db", str(db)], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "not found" in missing.stderr
    bad = subprocess.run(
        [*run, "kb", "load", str(tmp_path / "nope"), "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("tandem: ")


def test_load_dir_from_cli_directory(store: Store, tmp_path: Path) -> None:
    (tmp_path / "one.md").write_text(
        "---\nid: C-1\ntitle: Custom\n---\nCustom article about kiwis.\n"
    )
    assert load_dir(store, tmp_path) == 1
    assert search(store, "kiwis")[0].id == "C-1"


def test_ensure_loaded_adds_new_bundled_articles_without_overwriting(store: Store) -> None:
    n = ensure_loaded(store)
    with store.write() as conn:
        conn.execute("DELETE FROM kb_articles WHERE id = 'KB-053'")
        conn.execute("UPDATE kb_articles SET body = 'Our own wording.' WHERE id = 'KB-001'")
    assert ensure_loaded(store) == n
    assert get(store, "KB-053").title  # an article a newer release ships comes back
    assert get(store, "KB-001").body == "Our own wording."  # a local edit is kept


def test_the_ranker_follows_the_articles_as_they_change(kb_store: Store) -> None:
    from console.kb.rank import ranker_for

    ranker = ranker_for(kb_store)
    assert ranker_for(kb_store) is ranker  # one index per database while nothing changes
    assert "X-1" not in [c.id for c in ranker.rank(kb_store, "lime coloured cards")]
    upsert_articles(
        kb_store, [KbArticle("X-1", "Lime coloured cards", "Lime cards are green.", "lime card")]
    )
    again = ranker_for(kb_store)
    assert again is not ranker
    assert [c.id for c in again.rank(kb_store, "lime coloured cards")][:1] == ["X-1"]
    load_bundled(kb_store)  # the bundled set again: X-1 is gone
    assert "X-1" not in ranker_for(kb_store).articles


def test_one_stemmer_and_one_stop_list_for_every_ranking() -> None:
    from console.kb.words import content_stems, stem
    from store.kb import STOP_WORDS

    # The bot, drafts and search meet at the same stems: "declined"/"decline", "fees"/"fee".
    assert stem("declined") == stem("decline") and stem("fees") == stem("fee")
    # content_stems (drafts' sentence choice) drops exactly the search's stop words.
    assert content_stems("how do I freeze my card") == {stem("freeze"), stem("card")}
    assert "please" in STOP_WORDS and not content_stems("please")


def _own_questions(store: Store) -> list[str]:
    """Questions written from our own articles: every title, tag, summary and fact."""
    from console.kb.rank import ranker_for

    out = ["How does pay in 3 work?", "I forgot my PIN", "card card card", "a" * 300]
    for indexed in ranker_for(store).articles.values():
        parsed = indexed.parsed
        out += [parsed.title, parsed.summary, *parsed.tags, *parsed.facts, *parsed.steps]
    return out


def test_the_bots_in_process_bm25_is_sqlites(kb_store: Store, tmp_path: Path) -> None:
    from console.kb.rank import Ranker
    from store.kb import search_scores

    # Two articles with the same words score the same: the one stored first comes first in
    # SQLite's results (rowid), whatever their ids; on PostgreSQL the index breaks ties by id.
    twins = [KbArticle(f"{p}-1", "Lime cards", "Lime cards are green.", "lime") for p in "ZA"]
    upsert_articles(kb_store, twins)
    questions = _own_questions(kb_store) + ["lime cards", "green lime"]
    with Store(tmp_path / "reference.db") as sqlite:
        ensure_loaded(sqlite)
        upsert_articles(sqlite, twins)
        ranker = Ranker.load(sqlite)
        for question in questions:
            words = terms(question)
            assert ranker._bm25.search(words, 20) == search_scores(sqlite, question, 20)
        assert [i for i, _ in ranker._bm25.search(["lime"], 2)] == ["Z-1", "A-1"]
        # ... and the bot's candidates are those of SQLite's search, ranked the same way.
        for question in questions[:100]:
            words = tuple(terms(question))
            assert ranker.rank_in_process(words, 3) == ranker.rank_words(sqlite, words, 3)
    if kb_store.backend == "postgresql":
        # The bot ranks on PostgreSQL as on SQLite (not by the server's ts_rank).
        on_server = Ranker.load(kb_store)
        assert [i for i, _ in on_server._bm25.search(["lime"], 2)] == ["A-1", "Z-1"]
        for question in questions:
            words = tuple(terms(question))
            if "lime" not in words:
                assert on_server.rank_in_process(words, 3) == ranker.rank_in_process(words, 3)


def test_in_process_bm25_scores_phrases_as_fts5() -> None:
    import sqlite3

    from store.kb import WEIGHTS
    from store.kb_bm25 import Bm25Index

    articles = [
        KbArticle("A", "Don't panic", "If you don't know, ask. Do not wait.", "help"),
        KbArticle("B", "Waiting", "Don t wait: don't. Panic don't.", "wait, panic"),
        KbArticle("C", "Other", "Nothing to see here at all, really nothing.", ""),
    ]
    fts = sqlite3.connect(":memory:")
    fts.execute("CREATE VIRTUAL TABLE a USING fts5(title, body, tags, tokenize='porter unicode61')")
    fts.executemany(
        "INSERT INTO a(rowid, title, body, tags) VALUES (?, ?, ?, ?)",
        [(n, x.title, x.body, x.tags) for n, x in enumerate(articles)],
    )
    index = Bm25Index(articles, WEIGHTS)
    # "don't" is two tokens to FTS5 (a phrase), "waiting" one stem, "ǅ" folds.
    for words in (["don't"], ["don't", "panic"], ["waiting", "don't", "nothing"], ["ǅx", "t"]):
        expected = [
            (articles[r[0]].id, r[1])
            for r in fts.execute(
                "SELECT rowid, bm25(a, ?, ?, ?) AS s FROM a WHERE a MATCH ? ORDER BY s, rowid",
                (*WEIGHTS, " OR ".join(f'"{w}"' for w in words)),
            )
        ]
        assert index.search(words, 5) == expected, words


def test_the_python_porter_stemmer_is_fts5s() -> None:
    import itertools
    import re
    import sqlite3

    from store.kb_porter import porter

    words = set()
    for art in read_dir(ARTICLES_DIR):
        words.update(re.findall(r"[a-z0-9]+", f"{art.title} {art.body} {art.tags}".lower()))
    suffixes = "s es ies sses ed eed ing ational tional enci izer logi bli alli entli eli ousli"
    suffixes += " ization ator alism iveness fulness aliti biliti ical ness icate ful ative"
    suffixes += " alize ance ible ant ement ment ent sion ion ou ism ate iti ous ive ize y ll e"
    for word in sorted(words)[::2]:
        words.update(word + s for s in suffixes.split())
    for combo in itertools.product("aeiouybcdlstwx", repeat=3):
        words.update("".join(combo) + s for s in ("", "ed", "ing", "es"))
    words.update(("x" * 65, "ab", "a" * 64 + "ing"))
    listed = sorted(words)
    fts = sqlite3.connect(":memory:")
    fts.execute("CREATE VIRTUAL TABLE w USING fts5(x, tokenize='porter unicode61')")
    fts.execute("CREATE VIRTUAL TABLE v USING fts5vocab(w, instance)")
    fts.executemany("INSERT INTO w(rowid, x) VALUES (?, ?)", enumerate(listed))
    stems = dict(fts.execute("SELECT doc, term FROM v"))
    assert len(listed) > 20_000
    assert [porter(w) for w in listed] == [stems[i] for i in range(len(listed))]
