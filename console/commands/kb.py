"""``tandem kb load [DIR]``, ``tandem kb search QUERY`` and ``tandem kb show ID``."""

from __future__ import annotations

import argparse
import json

from console.commands.options import add_db_option
from console.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "kb",
        help="load and search the knowledge base",
        description="The knowledge base the bot and the drafts answer from: Markdown articles "
        "(front matter id/title/tags), searched with SQLite FTS5 and ranked as the console ranks them.",
        epilog="Example: tandem kb search 'my card was declined abroad'",
    )
    ksub = parser.add_subparsers(dest="kb_command", metavar="ACTION", required=True)
    p = ksub.add_parser(
        "load", help="(re)load articles from Markdown files (default: the bundled ones)"
    )
    p.add_argument("directory", nargs="?", metavar="DIR", help="a directory of .md articles")
    p.add_argument(
        "--replace",
        action="store_true",
        help="also remove stored articles that are not in DIR (always so for the bundled set)",
    )
    add_db_option(p)
    p.set_defaults(func=_load)
    p = ksub.add_parser("search", help="the best matching articles for a question")
    p.add_argument("query", nargs="+", metavar="QUERY", help="words or a customer's question")
    p.add_argument("-n", "--limit", type=int, default=5, help="how many articles (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    add_db_option(p)
    p.set_defaults(func=_search)
    p = ksub.add_parser("show", help="print one article")
    p.add_argument("id", metavar="ID", help="an article id, e.g. KB-007")
    add_db_option(p)
    p.set_defaults(func=_show)


def _load(args: argparse.Namespace) -> int:
    from console.kb import ArticleError, load_bundled, load_dir
    from store import open_store
    from store.kb import count

    store = open_store(args.db)
    try:
        if args.directory:
            changed = load_dir(store, args.directory, replace=args.replace)
        else:
            changed = load_bundled(store)
    except ArticleError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"{store.path}: {changed} article(s) added or changed, {count(store)} in the knowledge base"
    )
    return 0


def _reader(path: str | None):  # noqa: ANN202 - store.Store, imported lazily
    """The store for a reading command; the bundled articles are loaded when it can be written."""
    from console.kb import ensure_loaded
    from store import open_reader
    from store.kb import count

    store = open_reader(path)
    if not store.readonly:
        ensure_loaded(store)
    elif count(store) == 0:
        raise UsageError(
            f"{store.path} holds no articles and is read-only, so the bundled ones cannot be "
            "loaded into it"
        )
    return store


def _search(args: argparse.Namespace) -> int:
    from console.kb.rank import SEARCH_POOL, ranker_for
    from store.text import valid_unicode

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    query = valid_unicode(" ".join(args.query), "the question")
    store = _reader(args.db)
    # The console's ctrl+k order: the knowledge base's one ranker over the search's best hits.
    ranker = ranker_for(store)
    ranked = ranker.rank(store, query, pool=max(SEARCH_POOL, args.limit))
    hits = [(c, ranker.articles[c.id].article.title) for c in ranked[: args.limit]]
    if args.json:
        for c, title in hits:
            print(
                json.dumps(
                    {
                        "id": c.id,
                        "title": title,
                        "rank": round(c.rank, 3),
                        "score": round(c.score, 3),
                    }
                )
            )
        return 0
    if not hits:
        print("no matching article")
        return 1
    for c, title in hits:
        print(f"{c.id}  {c.rank:6.2f}  {title}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from store.errors import NotFound
    from store.kb import get

    store = _reader(args.db)
    try:
        article = get(store, args.id)
    except NotFound as exc:
        raise UsageError(str(exc)) from None
    print(f"{article.id}  {article.title}")
    if article.tags:
        print(f"tags: {article.tags}")
    print()
    print(article.body)
    return 0
