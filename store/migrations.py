"""Versioned schema migrations (sqlite-utils ``Migrations``).

Each migration runs in the same transaction as the record that it was applied. Several
processes may open a fresh file at once (the hub and two consoles), so :func:`migrate` takes
the write lock first and looks again at what is pending under it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from sqlite_utils import Database, Migrations

if TYPE_CHECKING:
    from store.db import Store

migrations = Migrations("tandem")

# The states' names are declared in store.moves; the CHECK constraints below spell them out
# because a migration is frozen SQL (renaming a state would be a migration of its own).
ROLES = ("customer", "bot", "agent", "system", "note")


@migrations(name="0001_initial")
def m0001_initial(db: Database) -> None:
    """Customers, agents, conversations, messages, the events feed, drafts, the KB."""
    _run_script(
        db,
        """
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            external_id TEXT UNIQUE,
            name TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            display_name TEXT,
            role TEXT NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor')),
            created_at REAL NOT NULL,
            last_seen_at REAL
        );
        -- owner is the agent's name while state = 'human' and NULL otherwise: the state
        -- itself names the bot or the queue as owner, so exactly one owner always exists.
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            channel TEXT NOT NULL DEFAULT 'api',
            state TEXT NOT NULL DEFAULT 'bot'
                CHECK (state IN ('bot', 'waiting', 'human', 'resolved')),
            owner TEXT REFERENCES agents(name),
            level TEXT NOT NULL DEFAULT 'calm'
                CHECK (level IN ('calm', 'watch', 'empathy', 'urgent')),
            score REAL NOT NULL DEFAULT 0,
            reasons TEXT NOT NULL DEFAULT '[]',
            subject TEXT NOT NULL DEFAULT '',
            token_hash TEXT,
            triage_state TEXT,
            message_count INTEGER NOT NULL DEFAULT 0,
            bot_fallbacks INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_message_at REAL,
            last_customer_at REAL,
            waiting_since REAL,
            claimed_at REAL,
            first_human_reply_at REAL,
            resolved_at REAL,
            CHECK ((state = 'human') = (owner IS NOT NULL))
        );
        CREATE INDEX conversations_state ON conversations(state, level);
        CREATE INDEX conversations_owner ON conversations(owner) WHERE owner IS NOT NULL;
        CREATE INDEX conversations_customer ON conversations(customer_id);

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            role TEXT NOT NULL CHECK (role IN ('customer', 'bot', 'agent', 'system', 'note')),
            author TEXT,
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            idempotency_key TEXT,
            reply_to INTEGER REFERENCES messages(id),
            level TEXT,
            score REAL,
            reasons TEXT,
            meta TEXT
        );
        CREATE INDEX messages_conversation ON messages(conversation_id, id);
        -- Invariant 4: one stored message per channel message.
        CREATE UNIQUE INDEX messages_idempotency
            ON messages(conversation_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
        -- A replayed hub never answers the same customer message twice.
        CREATE UNIQUE INDEX messages_bot_reply_to
            ON messages(reply_to) WHERE role = 'bot' AND reply_to IS NOT NULL;

        -- The append-only change feed. AUTOINCREMENT: ids are never reused, even after a
        -- rollback of the newest row, so a follower's cursor stays meaningful.
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            conversation_id INTEGER REFERENCES conversations(id),
            kind TEXT NOT NULL,
            actor TEXT,
            from_state TEXT,
            to_state TEXT,
            message_id INTEGER,
            data TEXT
        );
        CREATE INDEX events_conversation ON events(conversation_id, id);

        CREATE TABLE drafts (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            agent TEXT,
            engine TEXT NOT NULL,
            model TEXT,
            instruction TEXT,
            based_on_message_id INTEGER,
            text TEXT NOT NULL DEFAULT '',
            sent_text TEXT,
            sent_message_id INTEGER,
            edit_distance INTEGER,
            outcome TEXT NOT NULL DEFAULT 'pending'
                CHECK (outcome IN ('pending', 'accepted', 'edited', 'discarded', 'stale', 'failed')),
            kb_ids TEXT NOT NULL DEFAULT '[]',
            notice TEXT,
            first_text_ms REAL,
            total_ms REAL,
            created_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE INDEX drafts_conversation ON drafts(conversation_id, id);

        CREATE TABLE kb_articles (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL
        );
        CREATE VIRTUAL TABLE kb_fts USING fts5(
            title, body, tags, content='kb_articles', content_rowid='rowid',
            tokenize='porter unicode61'
        );
        CREATE TRIGGER kb_ai AFTER INSERT ON kb_articles BEGIN
            INSERT INTO kb_fts(rowid, title, body, tags)
            VALUES (new.rowid, new.title, new.body, new.tags);
        END;
        CREATE TRIGGER kb_ad AFTER DELETE ON kb_articles BEGIN
            INSERT INTO kb_fts(kb_fts, rowid, title, body, tags)
            VALUES ('delete', old.rowid, old.title, old.body, old.tags);
        END;
        CREATE TRIGGER kb_au AFTER UPDATE ON kb_articles BEGIN
            INSERT INTO kb_fts(kb_fts, rowid, title, body, tags)
            VALUES ('delete', old.rowid, old.title, old.body, old.tags);
            INSERT INTO kb_fts(rowid, title, body, tags)
            VALUES (new.rowid, new.title, new.body, new.tags);
        END;

        -- Where a long-running reader (the hub) got to in the feed, so a restart resumes.
        CREATE TABLE cursors (
            name TEXT PRIMARY KEY,
            event_id INTEGER NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    )


@migrations(name="0002_llm_guardrails")
def m0002_llm_guardrails(db: Database) -> None:
    """What an LLM that failed or was overruled cost, kept apart from what was finally used.

    ``drafts.incomplete``: why a streamed draft did not finish properly (the token limit, a
    cut connection, no finish reason); NULL when it did. ``drafts.llm_lost_ms``: time spent
    on an LLM that failed before another engine wrote the draft, so ``first_text_ms`` is the
    engine's own. ``conversations.llm_fallbacks``: bot turns where the LLM's answer was not
    used (timeout, malformed, ungrounded, an overruled hand-off), for the wall's tile.
    """
    _run_script(
        db,
        """
        ALTER TABLE drafts ADD COLUMN incomplete TEXT;
        ALTER TABLE drafts ADD COLUMN llm_lost_ms REAL;
        ALTER TABLE conversations ADD COLUMN llm_fallbacks INTEGER NOT NULL DEFAULT 0;
        """,
    )


@migrations(name="0003_ratings_webhooks")
def m0003_ratings_webhooks(db: Database) -> None:
    """The customer's rating of a closed conversation, and the outbox of signed webhooks.

    ``ratings``: one per resolution (``resolved_event`` is the ``events`` row that closed the
    conversation, so a reopened and closed-again conversation can be rated again); ``agent`` is
    the person who had it last, for per-agent satisfaction. ``webhook_deliveries``: one row per
    feed event per endpoint (UNIQUE, so a replayed feed never sends an event twice), with the
    exact body that is signed and sent on every attempt, and its fate: pending until a 2xx,
    ``dead`` after the last retry (the dead-letter count in ``tandem db status``).
    """
    _run_script(
        db,
        """
        CREATE TABLE ratings (
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            resolved_event INTEGER NOT NULL,
            score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
            comment TEXT,
            agent TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (conversation_id, resolved_event)
        );
        CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY,
            delivery_id TEXT NOT NULL UNIQUE,
            endpoint TEXT NOT NULL,
            event_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL,
            last_status INTEGER,
            last_error TEXT,
            created_at REAL NOT NULL,
            finished_at REAL,
            UNIQUE (endpoint, event_id)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at)
            WHERE status = 'pending';
        """,
    )


@migrations(name="0004_report_indexes")
def m0004_report_indexes(db: Database) -> None:
    """Indexes for reading history by time: ``tandem report``, ``tandem whatif``.

    The feed by kind and time (escalations, claims, abandonments in a window), conversations by
    the time they opened, and agents' messages by time (a partial index: agents write a small
    share of the messages, so the hub's inserts barely pay for it).
    """
    _run_script(
        db,
        """
        CREATE INDEX events_kind_at ON events(kind, at);
        CREATE INDEX conversations_created ON conversations(created_at);
        CREATE INDEX messages_agent_at ON messages(created_at) WHERE role = 'agent';
        """,
    )


@migrations(name="0005_accounts")
def m0005_accounts(db: Database) -> None:
    """Accounts for team mode (DESIGN section 12): who may connect to ``tandem serve``.

    One row per agent or supervisor who holds a token; ``agents`` keeps everyone the feed
    names (local consoles, the demo). Only the token's SHA-256 is stored. ``role`` here is
    the authority for an account holder; ``agents.role`` is kept equal to it.
    """
    _run_script(
        db,
        """
        CREATE TABLE accounts (
            name TEXT PRIMARY KEY REFERENCES agents(name),
            role TEXT NOT NULL CHECK (role IN ('agent', 'supervisor')),
            token_hash TEXT NOT NULL UNIQUE,
            disabled_at REAL,
            created_at REAL NOT NULL,
            rotated_at REAL
        );
        """,
    )


@migrations(name="0006_triage_language")
def m0006_triage_language(db: Database) -> None:
    """The customer's language and the LLM judge's own reasons on a conversation (issue 12).

    ``lang`` is the ISO 639-1 code triage detected (NULL until a customer wrote);
    ``model_reasons`` (a JSON list) are the reasons only the LLM gave, also present in
    ``reasons`` so every consumer sees them, and marked as the model's on screen;
    ``model_why`` is the model's one line.
    """
    _run_script(
        db,
        """
        ALTER TABLE conversations ADD COLUMN lang TEXT;
        ALTER TABLE conversations ADD COLUMN model_reasons TEXT;
        ALTER TABLE conversations ADD COLUMN model_why TEXT;
        """,
    )


@migrations(name="0007_events_kind_at_partial")
def m0007_events_kind_at_partial(db: Database) -> None:
    """The feed's (kind, at) index without the message events.

    Messages are most of the feed and no report reads them by kind, so leaving them out of
    the index takes its upkeep off every message the hub stores (0004's full index cost about
    a tenth of a message insert). Readers say ``kind != 'message'`` so SQLite may use it.
    """
    _run_script(
        db,
        """
        DROP INDEX IF EXISTS events_kind_at;
        CREATE INDEX events_kind_at ON events(kind, at) WHERE kind != 'message';
        """,
    )


@migrations(name="0008_presence_skills")
def m0008_presence_skills(db: Database) -> None:
    """Presence and language skills per agent, for automatic assignment (issue 16, point 5).

    ``presence`` is what the agent's console says: ``online``, ``away`` (stepped away, or idle)
    or ``offline`` (quit); NULL for a name no console reported (an older console, an API
    client), which keeps the older rule (seen recently). ``presence_at``: when it last changed.
    ``langs``: the languages the agent takes, ISO 639-1 codes separated by commas; NULL or
    empty for any language.
    """
    _run_script(
        db,
        """
        ALTER TABLE agents ADD COLUMN presence TEXT
            CHECK (presence IN ('online', 'away', 'offline'));
        ALTER TABLE agents ADD COLUMN presence_at REAL;
        ALTER TABLE agents ADD COLUMN langs TEXT;
        """,
    )


@migrations(name="0009_viewers")
def m0009_viewers(db: Database) -> None:
    """Who has a conversation open right now (live oversight, issue 16).

    One row per console showing a conversation: written when it opens, renewed by the
    console's heartbeat, removed when it closes. ``expires_at`` bounds a console that died
    without saying goodbye: a row past it is nobody (readers filter, writers sweep).
    """
    _run_script(
        db,
        """
        CREATE TABLE viewers (
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            agent TEXT NOT NULL REFERENCES agents(name),
            since REAL NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (conversation_id, agent)
        );
        CREATE INDEX viewers_expires ON viewers(expires_at);
        """,
    )


@migrations(name="0010_hub_leases")
def m0010_hub_leases(db: Database) -> None:
    """Hub workers and their leases on the shards of the conversations (issue 17).

    ``hub_workers`` is who is alive (``seen_at`` renewed by each worker's heartbeat), so every
    worker can work out its fair share; ``hub_leases`` says which worker handles a shard
    (conversation id modulo the hub's shard count) until ``expires_at``. A lease that is not
    renewed in time may be taken by another worker: a dead one hands its share on. Each
    shard's place in the feed is a row of ``cursors`` (``hub/<shard>``).
    """
    _run_script(
        db,
        """
        CREATE TABLE hub_workers (
            name TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            seen_at REAL NOT NULL
        );
        CREATE TABLE hub_leases (
            shard INTEGER PRIMARY KEY,
            owner TEXT,
            expires_at REAL NOT NULL DEFAULT 0,
            taken_at REAL
        );
        CREATE INDEX hub_leases_owner ON hub_leases(owner);
        """,
    )


@migrations(name="0011_queue_index")
def m0011_queue_index(db: Database) -> None:
    """The queue's index carries ``waiting_since``: (state, level, waiting_since).

    The customer's place in the queue (store.views.waiting_ahead, on every escalation) counts
    the longer waits at a level; with (state, level) alone each waiting row was read from a
    table page scattered by the hub's triage-state rewrites (1.5 ms a count with ~2,000
    waiting against 0.17 ms from the index). The old index is a prefix of this one.
    """
    _run_script(
        db,
        """
        CREATE INDEX conversations_queue ON conversations(state, level, waiting_since);
        DROP INDEX IF EXISTS conversations_state;
        """,
    )


@migrations(name="0012_report_message_indexes")
def m0012_report_message_indexes(db: Database) -> None:
    """Per-conversation partial indexes on bot and agent messages, for ``tandem report``.

    The report asks of every conversation in its window whether the bot wrote in it, and of
    every claim when the first agent reply came; through (conversation_id, id) each answer read
    the conversation's message rows, text and all. Partial, so customers' messages (the hub's
    busiest insert) do not pay for them. The feed's (kind, at) index also carries the
    conversation, and so does the agents' messages by time index, so "which conversations were
    escalated, claimed, ... since" and "which had an agent write since" are read from the
    indexes alone. The 7-day report on the bench's 1,000,000 messages: 1,400 -> 960 ms of CPU.
    """
    _run_script(
        db,
        """
        CREATE INDEX messages_bot_conversation ON messages(conversation_id) WHERE role = 'bot';
        CREATE INDEX messages_agent_conversation ON messages(conversation_id, created_at)
            WHERE role = 'agent';
        DROP INDEX IF EXISTS events_kind_at;
        CREATE INDEX events_kind_at ON events(kind, at, conversation_id) WHERE kind != 'message';
        DROP INDEX IF EXISTS messages_agent_at;
        CREATE INDEX messages_agent_at ON messages(created_at, conversation_id) WHERE role = 'agent';
        """,
    )


@migrations(name="0015_agent_messages_index_again")
def m0015_agent_messages_index_again(db: Database) -> None:
    """Rebuild ``messages_agent_at`` as (created_at, conversation_id) where 0012 did not.

    0012 was edited after it landed: its first version left ``messages_agent_at`` on
    (created_at) alone, and a store that applied that version never runs 0012 again, so it
    kept the narrower index (same name, so nothing fails: the report reads a message row per
    agent message instead of the index). Rebuilding is idempotent; on a store that already has
    the wide index it costs one pass over the agents' messages, once.
    """
    _run_script(
        db,
        """
        DROP INDEX IF EXISTS messages_agent_at;
        CREATE INDEX messages_agent_at ON messages(created_at, conversation_id) WHERE role = 'agent';
        """,
    )


@migrations(name="0016_feed_notify_shards")
def m0016_feed_notify_shards(db: Database) -> None:
    """PostgreSQL only: the feed's notification says which shards its events are in.

    SQLite has no notifications (a follower asks ``data_version``): nothing to change here.
    On PostgreSQL the trigger's payload is the bit mask of the inserted events' conversation
    ids modulo :data:`store.feed.NOTIFY_SHARDS` (store/migrations_pg.py), so a hub worker
    skips the commits of other workers' shards instead of reading the feed for each.
    """


def _run_script(db: Database, script: str) -> None:
    """Run statements one by one: ``executescript`` would COMMIT the caller's transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement[:60]!r}")


def current_version() -> str:
    """The name of the newest migration this code knows."""
    return migrations._migrations[-1].name


def pending(store: Store) -> list[str]:
    """Names of migrations not yet applied to ``store`` (read-only)."""
    if store.backend == "postgresql":
        from store import migrations_pg

        return migrations_pg.pending(store)  # type: ignore[arg-type]
    return [m.name for m in migrations.pending(store.db)]


def applied(store: Store) -> list[str]:
    """Names of migrations applied to ``store``, oldest first (read-only)."""
    if store.backend == "postgresql":
        from store import migrations_pg

        return migrations_pg.applied(store)  # type: ignore[arg-type]
    return [m.name for m in migrations.applied(store.db)]


def migrate(store: Store) -> list[str]:
    """Apply pending migrations under the write lock; return the names applied."""
    if not migrations.pending(store.db):
        return []
    conn = store.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        todo = [m.name for m in migrations.pending(store.db)]
        if todo:
            # Inside our transaction sqlite-utils nests each migration in a savepoint.
            migrations.apply(store.db)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return todo
