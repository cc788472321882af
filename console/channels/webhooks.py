"""Signed webhooks: the hub POSTs messages and state changes to an integration's endpoints.

``tandem serve --webhook URL`` (or ``urls`` under ``[webhooks]`` in the config file) with the
shared secret in ``TANDEM_WEBHOOK_SECRET``. Every delivery is one JSON object::

    {"delivery_id": "9f1c...", "type": "joined", "event_id": "812", "conversation_id": "31",
     "at": "2026-01-31T12:00:00.000Z", "data": {... the stream's payload for that event ...}}

with these headers:

=====================  =============================================================
``Tandem-Delivery``    the delivery id: the same on every retry, so repeats can be dropped
``Tandem-Event``       the type: ``message``, ``opened``, ``waiting``, ``joined``,
                       ``handed_back``, ``resolved``, ``reopened``, ``rated``
``Tandem-Signature``   ``t=<unix seconds>,v1=<hex>``: HMAC-SHA256 with the shared secret
                       over ``<t>.<body>``; refuse a ``t`` far from now (a replay)
=====================  =============================================================

:func:`verify` is the receiving side's check, in a few lines to copy. A 2xx answer is a
delivery; anything else (or no answer within the timeout) is retried with exponential
backoff; after the last attempt the delivery is a dead letter, counted in
``tandem db status``. Deliveries are independent: a retried one can arrive after a later
event, so a receiver orders by ``event_id``.

The outbox lives in the store (:mod:`store.webhooks`): queueing and the feed cursor move in
one transaction, so a restart neither skips an event nor queues it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from console.channels.events import public_event
from console.config import WebhookConfig
from store import DatabaseUnavailable, Store
from store import webhooks as outbox
from store.db import location
from store.feed import Follower, last_event_id, load_cursor

log = logging.getLogger("tandem.webhooks")

CURSOR = "webhooks"
SIGNATURE_HEADER = "Tandem-Signature"
DEFAULT_TOLERANCE_S = 300.0
#: Bytes of a receiver's answer read at most: only its status counts.
ANSWER_READ_LIMIT = 64 * 1024


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature: hex HMAC-SHA256 over ``<timestamp>.<body>``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the ``Tandem-Signature`` header for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (a ``Tandem-Signature`` value) signs ``body`` with ``secret``, recently.

    :param tolerance_s: how far the signed time may be from ``now``; older is a replay
    """
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long an undelivered webhook is retried.

    The defaults try 8 times over about 11 minutes (waits of 5 s, 10 s, 20 s ... 320 s, each
    stretched or shrunk by up to a fifth so failed endpoints are not hit in lockstep; no wait
    is longer than 10 min).
    """

    max_attempts: int = 8
    first_delay_s: float = 5.0
    max_delay_s: float = 600.0
    timeout_s: float = 10.0
    """Seconds an endpoint has to answer one attempt."""

    def delay(self, attempts: int) -> float:
        """Seconds before the next try, after ``attempts`` failed ones."""
        base = min(self.max_delay_s, self.first_delay_s * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)


class Webhooks:
    """Follows the feed into the outbox and delivers it, until stopped.

    :param db_path: the store
    :param config: endpoints and secret (``config.enabled`` must be true)
    :param retry: attempts and backoff
    :param poll_interval: seconds between looks at the feed and the outbox when idle
    :param concurrency: deliveries in flight at once
    """

    def __init__(
        self,
        db_path: str | Path,
        config: WebhookConfig,
        *,
        retry: RetryPolicy | None = None,
        poll_interval: float = 0.2,
        concurrency: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not config.urls or not config.secret:
            raise ValueError("webhooks need at least one URL and a secret")
        self.db_path = location(db_path)
        self.urls = config.urls
        self.secret = config.secret
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self.clock = clock
        self._sem = asyncio.Semaphore(concurrency)
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._store: Store | None = None
        self._follower: Follower | None = None
        self.sent = 0
        self.failures = 0

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db_path)
        return self._store

    def _feed(self) -> Follower:
        if self._follower is None:
            after = load_cursor(self.store, CURSOR)
            if after is None:
                # A new integration hears from now on, not the whole history; the starting point
                # is saved at once so a restart does not skip what happens meanwhile.
                after = last_event_id(self.store)
                outbox.enqueue(self.store, [], cursor=CURSOR, upto=after)
            self._follower = Follower(self.db_path, after=after)
        return self._follower

    def collect(self) -> int:
        """Queue a delivery per endpoint for each new reportable feed event; return how many."""
        events = self._feed().poll()
        if not events:
            return 0
        deliveries: list[outbox.NewDelivery] = []
        for e in events:
            reported = public_event(self.store, e)
            if reported is None:
                continue
            kind, payload = reported
            for url in self.urls:
                delivery_id = outbox.new_delivery_id()
                body = {
                    "delivery_id": delivery_id,
                    "type": kind,
                    "event_id": str(e.id),
                    "conversation_id": str(e.conversation_id),
                    "at": payload["at"],
                    "data": payload,
                }
                deliveries.append(
                    outbox.NewDelivery(
                        url, e.id, kind, json.dumps(body, separators=(",", ":")), delivery_id
                    )
                )
        return outbox.enqueue(self.store, deliveries, cursor=CURSOR, upto=events[-1].id)

    def deliver_due(self, session: aiohttp.ClientSession) -> int:
        """Start an attempt for each delivery that is due; return how many were started.

        Attempts run as tasks, so an endpoint that hangs until the timeout never holds up
        the feed or the other endpoints.
        """
        due = [
            d
            for d in outbox.due(self.store, at=self.clock(), limit=200)
            if d.id not in self._inflight
        ]
        for d in due:
            task = asyncio.create_task(self._attempt(session, d))
            self._inflight[d.id] = task
            task.add_done_callback(functools.partial(self._done, d.id))
        return len(due)

    def _done(self, row_id: int, task: asyncio.Task[None]) -> None:
        self._inflight.pop(row_id, None)
        if not task.cancelled() and task.exception() is not None:
            # The attempt's outcome was not stored (a locked database): it stays pending and
            # is tried again, with the same delivery id.
            log.warning("webhook delivery %s: %s", row_id, task.exception())

    async def settle(self) -> None:
        """Wait for the attempts in flight (each ends within the retry policy's timeout)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)

    async def _attempt(self, session: aiohttp.ClientSession, d: outbox.Delivery) -> None:
        body = d.body.encode("utf-8")
        status: int | None = None
        error = ""
        async with self._sem:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "tandem-webhooks/1",
                "Tandem-Delivery": d.delivery_id,
                "Tandem-Event": d.kind,
                SIGNATURE_HEADER: signature_header(self.secret, int(self.clock()), body),
            }
            try:
                async with session.post(
                    d.endpoint, data=body, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    if (response.content_length or 0) <= ANSWER_READ_LIMIT:
                        # Read (a small or empty answer) so the connection can serve the next
                        # delivery. Any other is left unread and its connection closed: a
                        # receiver streaming its answer would otherwise fill our memory until
                        # the timeout (by hand: serve grew to 2.4 GB in 12 s).
                        await response.content.read(ANSWER_READ_LIMIT)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        if status is not None and 200 <= status < 300:
            outbox.delivered(self.store, d.id, http_status=status, at=self.clock())
            self.sent += 1
            return
        self.failures += 1
        attempts = d.attempts + 1
        retry_at = (
            self.clock() + self.retry.delay(attempts)
            if attempts < self.retry.max_attempts
            else None
        )
        outbox.failed(
            self.store,
            d.id,
            error=error or f"HTTP {status}",
            http_status=status,
            retry_at=retry_at,
            at=self.clock(),
        )
        if retry_at is None:
            log.warning(
                "webhook %s to %s: gave up after %d attempts (%s): a dead letter",
                d.delivery_id,
                d.endpoint,
                attempts,
                error or f"HTTP {status}",
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Queue and deliver until ``stop`` is set; what is undelivered waits in the outbox."""
        timeout = aiohttp.ClientTimeout(total=self.retry.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                while not stop.is_set():
                    try:
                        busy = self.collect() + self.deliver_due(session)
                    except (DatabaseUnavailable, sqlite3.OperationalError) as exc:
                        # A webhook must never take the hub down: wait and look again.
                        log.warning("webhooks: database unavailable (%s); retrying", exc)
                        busy = 0
                    if not busy:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), self.poll_interval)
                await self.settle()
        finally:
            self.close()

    def close(self) -> None:
        """Close both connections."""
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self._store is not None:
            self._store.close()
            self._store = None
