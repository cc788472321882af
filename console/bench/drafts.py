"""``tandem bench drafts``: how fast a draft's first words reach the agent.

1. Embedded engine: time to first text through :class:`console.assist.service.DraftService`,
   from the call (before the transcript is read and the KB searched) to the first fragment in
   the consumer's hands, over conversations built from the simulator's personas on the bundled
   knowledge base. Goal (DESIGN.md section 11): p99 <= 50 ms.
2. LLM engine against the fake OpenAI-compatible server of the test suite (real client, real
   HTTP, server-sent chunks): Tandem's own overhead between the first chunk ``console.llm``
   receives and (a) the first text in the service's consumer, headless, and (b) the first
   text in the composer's editor inside a headless Textual app, which includes the deliberate
   flush interval of the buffered writes (the frame follows at the next screen refresh).

Prints numbers only; the fake server is looked up in the checkout's ``tests/`` (skipped when
absent, e.g. in an installed package).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

from store.stats import percentile_or_nan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--drafts", type=int, default=500, help="embedded drafts to time (default 500)"
    )
    parser.add_argument(
        "--llm-drafts", type=int, default=20, help="LLM drafts against the fake server (default 20)"
    )
    parser.add_argument(
        "--chunk-ms",
        type=float,
        default=20.0,
        help="the fake server's gap between chunks (default 20)",
    )
    parser.add_argument(
        "--words", type=int, default=60, help="words in the fake model's reply (default 60)"
    )
    parser.add_argument(
        "--no-ui", action="store_true", help="skip the composer (Textual) measurement"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed for the conversations")
    parser.add_argument("--dir", help="where to put the scratch database (default: a temp dir)")


def _pcts(values: Sequence[float]) -> str:
    """p50, p90, p99 (nearest rank, :mod:`store.stats`), max and mean of milliseconds."""
    ordered = sorted(values)

    def q(p: float) -> float:
        return percentile_or_nan(ordered, p)

    return (
        f"p50 {q(0.5):7.2f}  p90 {q(0.9):7.2f}  p99 {q(0.99):7.2f}  max {ordered[-1]:7.2f}"
        f"  mean {statistics.fmean(ordered):7.2f} ms  (n={len(ordered)})"
    )


def _reasons_for(persona: Any, rng: random.Random) -> list[str]:
    reasons = list(persona.expect_reasons)
    rng.shuffle(reasons)
    return reasons[: rng.randint(1, 3)] if reasons else []


def _conversations(store: Any, n: int, rng: random.Random) -> list[int]:
    """``n`` claimed conversations, shaped like the simulator's personas."""
    from console.channels.personas import fill, pick_persona
    from store import lifecycle

    ids = []
    for i in range(n):
        persona = pick_persona(rng)
        values: dict[str, str] = {}
        cid = lifecycle.open_conversation(
            store,
            rng.choice(["Maya Patel", "Tom", "guest-77", "Helen Ward", "Ravi", "Sofia"]),
            channel="bench",
        )
        opener = fill(rng.choice(persona.openers), rng, values)
        lifecycle.add_customer_message(store, cid, opener)
        if persona.after_fallback and rng.random() < 0.5:
            lifecycle.bot_reply(
                store,
                cid,
                "I'm not sure I understood. Could you tell me a bit more?",
                fallback=True,
            )
            lifecycle.add_customer_message(
                store,
                cid,
                fill(rng.choice(persona.after_fallback), rng, {**values, "opener": opener}),
            )
        reasons = _reasons_for(persona, rng)
        if reasons:
            lifecycle.record_triage(store, cid, lifecycle.TriageMark("empathy", 0.7, reasons))
        lifecycle.claim(store, cid, f"agent{i % 5}")
        ids.append(cid)
    return ids


async def _embedded(store: Any, ids: list[int]) -> tuple[list[float], list[float], list[float]]:
    from console.assist import embedded
    from console.assist.service import DraftService, DraftText

    service = DraftService(store, agent="bench")
    first: list[float] = []
    total: list[float] = []
    write_only: list[float] = []
    for cid in ids:
        t0 = time.perf_counter()
        got_first = None
        async for event in service.draft(cid):
            if got_first is None and isinstance(event, DraftText):
                got_first = (time.perf_counter() - t0) * 1000
        total.append((time.perf_counter() - t0) * 1000)
        first.append(got_first or 0.0)
        ctx = service.context(cid)
        t1 = time.perf_counter()
        embedded.write(ctx)
        write_only.append((time.perf_counter() - t1) * 1000)
    return first, total, write_only


def _fake_server() -> Any | None:
    tests = Path(__file__).resolve().parents[2] / "tests"
    path = tests / "fake_openai.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("tandem_bench_fake_openai", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.FakeOpenAI


def _timed_llm(config: Any) -> Any:
    """An LLM that notes when its first piece of text arrived (the measuring point)."""
    from console.llm import LLM

    class TimedLLM(LLM):
        first_piece_at: float | None = None

        async def stream(self, messages: Any, **kw: Any) -> AsyncGenerator[str, None]:
            self.first_piece_at = None
            async for piece in super().stream(messages, **kw):
                if self.first_piece_at is None:
                    self.first_piece_at = time.perf_counter()
                yield piece

    return TimedLLM(config)


async def _llm_headless(store: Any, ids: list[int], llm: Any) -> tuple[list[float], list[float]]:
    from console.assist.service import DraftService, DraftText

    service = DraftService(store, agent="bench", llm=llm)
    overhead, first = [], []
    for cid in ids:
        t0 = time.perf_counter()
        async with aclosing(service.draft(cid)) as events:
            async for event in events:
                if isinstance(event, DraftText):
                    now = time.perf_counter()
                    if llm.first_piece_at is not None:
                        overhead.append((now - llm.first_piece_at) * 1000)
                    first.append((now - t0) * 1000)
                    break
    return overhead, first


def _redaction_cost() -> str:
    """Per-message cost of :func:`console.privacy.redact` on plain text and on digit-heavy text
    (a regression to whole-text phone matching shows as ~1 ms on the second)."""
    from console.privacy import redact

    plain = "hi there my card is not working since yesterday, can you help?"
    digits = "I paid 45.99 on 12/03/2024 for order 12345678, call 07911 123456"
    out = []
    for label, text, n in (("plain", plain, 2000), ("digits", digits, 300)):
        t0 = time.perf_counter()
        for _ in range(n):
            redact(text)
        out.append(f"{label} {(time.perf_counter() - t0) / n * 1e6:.0f} us/message")
    return ", ".join(out)


def run(args: argparse.Namespace) -> int:
    from console.config import LLMConfig
    from console.kb import load_bundled
    from store import Store

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db_path = Path(tmp) / "bench-drafts.db"
        store = Store(db_path)
        articles = load_bundled(store)
        ids = _conversations(store, max(1, args.drafts), rng)
        print(f"drafts bench: {len(ids)} persona conversations, {articles} KB articles, {db_path}")

        first, total, write_only = asyncio.run(_embedded(store, ids))
        print("embedded, first text (call -> first fragment, incl. transcript read + KB search):")
        print("  " + _pcts(first))
        print("embedded, whole draft:           " + _pcts(total))
        print("embedded, phrasing alone (write): " + _pcts(write_only))
        print("redaction before text leaves for an LLM: " + _redaction_cost())

        fake_cls = _fake_server()
        if fake_cls is None or args.llm_drafts <= 0:
            print(
                "llm: skipped (tests/fake_openai.py not found next to this checkout)"
                if fake_cls is None
                else "llm: skipped (--llm-drafts 0)"
            )
            store.close()
            return 0
        with fake_cls() as fake:
            fake.chunk_delay = args.chunk_ms / 1000
            fake.reply = (
                " ".join(["Hi", "Maya,"] + [f"w{i}" for i in range(max(1, args.words - 2))])
                + "\nSources: KB-016"
            )
            llm = _timed_llm(
                LLMConfig(base_url=fake.base_url, api_key="bench", model="fake-model", timeout=10)
            )
            llm_ids = ids[: args.llm_drafts]
            overhead, llm_first = asyncio.run(_llm_headless(store, llm_ids, llm))
            print(
                f"llm (fake server, {args.chunk_ms:g} ms between chunks), first chunk received by console.llm ->"
            )
            print("  first text in the service's consumer (headless): " + _pcts(overhead))
            print("  call -> first text, consumer:                    " + _pcts(llm_first))
            if not args.no_ui:
                from console.ui.widgets.draft_probe import first_text_after

                ui = asyncio.run(
                    first_text_after(db_path, llm_ids, llm, lambda: llm.first_piece_at)
                )
                if ui:
                    print(
                        "  first text in the composer's editor (headless Textual app, buffered flush"
                        " every 40 ms; the frame follows at the next refresh):"
                    )
                    print("    " + _pcts(ui))
                else:
                    print("  composer: no measurement")
        store.close()
    return 0
