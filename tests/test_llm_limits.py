"""An endpoint that answers without end: the LLM wrapper stops reading and says why.

Real HTTP: a small aiohttp server on loopback plays the broken endpoint; the real openai
client talks to it. By hand, an endpoint answering with an endless JSON body made
``tandem serve`` read it until the timeout (70 MB -> 1.1 GB in 5 s for one bot answer), and an
endless stream of empty chunks would have gone on for as long as the chunks kept coming.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from console.config import LLMConfig
from console.llm import LLM, MAX_REPLY_BYTES, LLMError

MB = 2**20


@pytest.fixture
async def endless() -> AsyncIterator[tuple[str, list[int]]]:
    """An endpoint whose answers never end; how much it wrote (it can write on only as far
    as the client reads, plus what the sockets' buffers hold)."""
    written = [0]

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        streaming = bool(body.get("stream"))
        kind = "text/event-stream" if streaming else "application/json"
        response = web.StreamResponse(headers={"Content-Type": kind})
        await response.prepare(request)
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": None}]
        piece = (
            (f"data: {json.dumps(chunk)}\n\n" * 2000).encode()  # no text, ever
            if streaming
            else b'{"id": "x", "choices": [{"message": {"content": "' + b"a" * MB
        )
        first = True
        while written[0] < 256 * MB:  # a failed test, not a full disk
            await response.write(piece if streaming or first else b"a" * MB)
            written[0] += len(piece)
            first = False
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/v1")), written
    finally:
        await server.close()


def _llm(url: str) -> LLM:
    return LLM(LLMConfig(base_url=url, api_key="k", model="m", timeout=30))


async def test_an_endless_answer_is_dropped_after_its_limit(
    endless: tuple[str, list[int]],
) -> None:
    url, written = endless
    with pytest.raises(LLMError, match="larger than 4 MB"):
        await _llm(url).complete([{"role": "user", "content": "hi"}])
    assert written[0] < MAX_REPLY_BYTES + 64 * MB, written


async def test_an_endless_stream_without_text_is_dropped_after_its_limit(
    endless: tuple[str, list[int]],
) -> None:
    url, written = endless
    with pytest.raises(LLMError, match="larger than 4 MB"):
        async for _ in _llm(url).stream([{"role": "user", "content": "hi"}]):
            pass
    assert written[0] < MAX_REPLY_BYTES + 64 * MB, written
