"""Pennant Pay's knowledge base: Markdown articles bundled with Tandem, and their loader.

Each article is one file in ``console/kb/articles/``::

    ---
    id: KB-001
    title: Pay-in-3: how it works
    tags: pay-in-3, instalments, buy now pay later
    ---
    One or two sentences that answer the question on their own (the summary).

    - One key fact per bullet: fees, days, limits.

    ## Steps
    1. What to tap, in order.

The summary, facts and steps are what the embedded bot and drafts quote, so they are written
to be read on their own. :func:`ensure_loaded` is what the hub and the demo call.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from store.db import Store
from store.kb import KbArticle, article_ids, count, upsert_articles

ARTICLES_DIR = Path(__file__).with_name("articles")
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_BULLET = re.compile(r"^\s*[-*]\s+(.+)$")
_STEP = re.compile(r"^\s*\d+[.)]\s+(.+)$")


class ArticleError(ValueError):
    """A Markdown file is not a valid article (names the file and what is missing)."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """An article split into the parts answers are built from."""

    id: str
    title: str
    tags: tuple[str, ...]
    summary: str
    facts: tuple[str, ...] = field(default=())
    steps: tuple[str, ...] = field(default=())


def parse_markdown(text: str, source: str = "<text>") -> KbArticle:
    """Read one article file: front matter (id, title, tags) and the Markdown body.

    :raises ArticleError: no front matter, or id / title / body missing
    """
    match = _FRONT.match(text)
    if not match:
        raise ArticleError(f"{source}: missing front matter (--- id/title/tags ---)")
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip().lower()] = value.strip()
    body = text[match.end() :].strip()
    for key in ("id", "title"):
        if not meta.get(key):
            raise ArticleError(f"{source}: front matter lacks {key}")
    if not body:
        raise ArticleError(f"{source}: the article has no body")
    tags = ", ".join(t.strip() for t in meta.get("tags", "").split(",") if t.strip())
    return KbArticle(id=meta["id"], title=meta["title"], body=body, tags=tags)


def split_body(article: KbArticle) -> Parsed:
    """The summary (first paragraph), the bullet facts and the numbered steps of an article."""
    summary_lines: list[str] = []
    facts: list[str] = []
    steps: list[str] = []
    in_summary = True
    for line in article.body.splitlines():
        stripped = line.strip()
        if not stripped:
            if summary_lines:
                in_summary = False
            continue
        if stripped.startswith("#"):
            in_summary = False
            continue
        bullet, step = _BULLET.match(line), _STEP.match(line)
        if bullet:
            in_summary = False
            facts.append(bullet.group(1).strip())
        elif step:
            in_summary = False
            steps.append(step.group(1).strip())
        elif in_summary:
            summary_lines.append(stripped)
    tags = tuple(t.strip() for t in article.tags.split(",") if t.strip())
    return Parsed(
        article.id, article.title, tags, " ".join(summary_lines), tuple(facts), tuple(steps)
    )


def read_dir(directory: str | os.PathLike[str]) -> list[KbArticle]:
    """Every ``*.md`` article in ``directory`` (sorted by file name).

    :raises ArticleError: the directory is missing or a file is not a valid article
    """
    path = Path(directory)
    if not path.is_dir():
        raise ArticleError(f"{path} is not a directory")
    files = sorted(path.glob("*.md"))
    if not files:
        raise ArticleError(f"{path} holds no .md articles")
    return [parse_markdown(f.read_text(encoding="utf-8"), str(f)) for f in files]


def load_dir(store: Store, directory: str | os.PathLike[str], *, replace: bool = False) -> int:
    """Upsert the articles of ``directory``; return how many were new or changed."""
    return upsert_articles(store, read_dir(directory), replace=replace)


def load_bundled(store: Store) -> int:
    """(Re)load the articles shipped with Tandem; articles no longer shipped are removed."""
    return load_dir(store, ARTICLES_DIR, replace=True)


def ensure_loaded(store: Store) -> int:
    """Load the bundled articles when the table is empty; return the number of articles.

    On a store that has articles already, bundled articles it lacks (a newer Tandem ships
    more) are added; stored articles are never overwritten here (``tandem kb load`` does that).
    """
    if count(store) == 0:
        load_bundled(store)
        return count(store)
    stored = article_ids(store)
    try:
        missing = [a for a in read_dir(ARTICLES_DIR) if a.id not in stored]
    except ArticleError:
        missing = []  # a broken installation must not stop the hub; the stored KB still works
    if missing:
        upsert_articles(store, missing)
    return count(store)


__all__ = [
    "ARTICLES_DIR",
    "ArticleError",
    "Parsed",
    "ensure_loaded",
    "load_bundled",
    "load_dir",
    "parse_markdown",
    "read_dir",
    "split_body",
]
