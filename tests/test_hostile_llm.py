"""Garbage from an LLM endpoint: the fallback notice agents read is ours, never an exception's.

A real HTTP server on loopback answers 200 with bodies no chat completion looks like; the
real ``openai`` client reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from console.bot import BotContext, EmbeddedBot, LLMBot
from console.config import LLMConfig
from console.llm import LLM

GARBAGE = [
    b'{"choices": "x"}',
    b'{"choices": [{"message": 5}]}',
    b"[1, 2]",
    b'{"choices": [{"message": {"role": "assistant", "content": "<html>502</html>"}}]}',
]
# Words of Python's own errors that must never reach a notice (and so an agent's screen).
INTERNAL = ("Error", "object has no attribute", "Traceback", "Expecting value", "'str'", "'int'")


class _Garbage(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def garbage_server() -> Iterator[tuple[str, type[_Garbage]]]:
    handler = type("Handler", (_Garbage,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("body", GARBAGE)
async def test_a_garbage_reply_falls_back_with_a_notice_in_our_words(
    tmp_path: Path, garbage_server: tuple[str, type[_Garbage]], body: bytes
) -> None:
    url, handler = garbage_server
    handler.body = body
    bot = LLMBot(
        EmbeddedBot(tmp_path / "bot.db"),
        LLM(LLMConfig(base_url=url, api_key="k", model="m", timeout=5)),
    )
    ctx = BotContext(1, "Maya", messages=[{"role": "customer", "text": "How do I freeze my card?"}])
    answer = await bot.answer(ctx)
    assert answer.engine == "embedded" and answer.text
    notice = answer.notice or ""
    assert notice.startswith("LLM not used:"), notice
    for word in INTERNAL:
        assert word not in notice, notice
    assert "the LLM reply" in notice
