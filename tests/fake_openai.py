"""A fake OpenAI-compatible HTTP server for tests: real HTTP on 127.0.0.1, no model.

It serves ``POST /v1/chat/completions`` (non-streaming, streaming SSE, tool calls) and
``GET /v1/models`` from a background thread, so the real ``openai`` client can be pointed
at :attr:`FakeOpenAI.base_url`. Every request body is recorded in :attr:`FakeOpenAI.requests`
for assertions (what the model was told, that no PII left, which tools were offered).

Knobs (set them on the instance at any time; :meth:`reset` restores the defaults):

- ``reply``: the assistant text (split into word chunks when streaming)
- ``tool_args``: a dict returned as a tool call when the request offers tools
  (``None``: answer with text even if tools were offered)
- ``ignore_tools``: answer ``json.dumps(tool_args)`` as plain text, like servers that
  do not support tools
- ``reject_tools``: answer HTTP 400 when tools are offered (forces the json_schema retry)
- ``reject_response_format``: answer HTTP 400 when a ``response_format`` is asked for
- ``responder``: ``callable(body) -> str | dict``; a str is the reply text, a dict the tool args
- ``delay``: seconds before the response headers; ``chunk_delay``: seconds between SSE chunks
- :meth:`hold` / :meth:`release`: requests wait, unanswered, until the test releases them (a
  timeout test then needs no clock: while the answer is held, only the client can give up)
- ``status``: an HTTP error status to return instead (with ``error_message``)
- ``drop``: close the connection without answering
- ``finish_reason``: what the reply says about how it ended (default: ``stop``, or
  ``tool_calls`` for a tool call); ``"length"`` is a reply cut at the token limit, ``None``
  leaves the field empty (a server that never says)
- ``cut_after``: stream this many text chunks, then close the connection with no finish
  and no ``[DONE]`` (a server that died mid-reply)
- ``pause_after``: stream this many text chunks, then wait for :meth:`resume` before the
  rest (a reply still being written, for as long as the test needs, whatever the load)

Run as a program (``python tests/fake_openai.py --reply TEXT --chunk-delay S``) it serves
in the foreground and prints ``port N`` once listening: a real process that a test can stop
with SIGTERM half-way through a stream.

Use the ``fake_openai`` fixture (tests/conftest.py) or ``with FakeOpenAI() as fake: ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    """A running fake endpoint; start with :meth:`start` or as a context manager."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        # The triage judge's requests (a forced tool call named "triage") have a lane of their
        # own, so a hub test's bot answers and request counts are not disturbed by them.
        self.judge_requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._resumed = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Forget recorded requests and restore every knob's default."""
        with self._lock:
            self.requests.clear()
            self.headers.clear()
            self.judge_requests.clear()
        self._released.set()
        self._resumed.clear()
        self.judge_args: dict[str, Any] | None = {"level": "calm", "reasons": [], "why": ""}
        self.judge_reply: str | None = None  # a text answer instead of the tool call
        self.judge_delay: float = 0.0
        self.judge_responder: Callable[[dict[str, Any]], str | dict[str, Any]] | None = None
        self.reply: str = "Hello from the fake model."
        self.tool_args: dict[str, Any] | None = None
        self.ignore_tools: bool = False
        self.reject_tools: bool = False
        self.reject_response_format: bool = False
        self.responder: Callable[[dict[str, Any]], str | dict[str, Any]] | None = None
        self.delay: float = 0.0
        self.chunk_delay: float = 0.0
        self.status: int | None = None
        self.error_message: str = "fake failure"
        self.drop: bool = False
        self.finish_reason: str | None = "stop"
        self.cut_after: int | None = None
        self.pause_after: int | None = None
        self.model_name: str = "fake-model"
        self.on_request: Callable[[], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def hold(self) -> None:
        """Keep every request waiting, unanswered, until :meth:`release` (or the server stops)."""
        self._released.clear()

    def release(self) -> None:
        """Let held requests be answered."""
        self._released.set()

    def resume(self) -> None:
        """Let a stream paused by ``pause_after`` go on."""
        self._resumed.set()

    def stop(self) -> None:
        """Stop listening (requests still sleeping in a delay are abandoned)."""
        self._resumed.set()  # a paused stream ends rather than wait out its two minutes
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeOpenAI is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The value for ``OPENAI_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- assertions helpers --------------------------------------------------------------
    @property
    def last(self) -> dict[str, Any]:
        """The most recent request body."""
        with self._lock:
            return self.requests[-1]

    def all_text(self) -> str:
        """Every message content of every recorded request, joined: for "not in" checks."""
        with self._lock:
            bodies = list(self.requests)
        return "\n".join(
            json.dumps(body.get("messages", []), ensure_ascii=False) for body in bodies
        )

    # -- answering -----------------------------------------------------------------------
    @staticmethod
    def is_judge(body: dict[str, Any]) -> bool:
        """A request from the triage judge (console.triage.judge)."""
        tools = body.get("tools") or []
        return any((t.get("function") or {}).get("name") == "triage" for t in tools)

    def judge_text(self) -> str:
        """Every message the judge sent, joined: for "not in" checks."""
        with self._lock:
            bodies = list(self.judge_requests)
        return "\n".join(json.dumps(b.get("messages", []), ensure_ascii=False) for b in bodies)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            if self.is_judge(body):
                self.judge_requests.append(body)
                return
            self.requests.append(body)
            self.headers.append(headers)

    def _answer(self, body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """(text, tool_args) for this request."""
        if self.is_judge(body):
            if self.judge_responder is not None:
                result = self.judge_responder(body)
                return (None, result) if isinstance(result, dict) else (result, None)
            if self.judge_reply is not None:
                return self.judge_reply, None
            return (None, self.judge_args) if self.judge_args is not None else (self.reply, None)
        wants_tool = bool(body.get("tools"))
        if self.responder is not None:
            result = self.responder(body)
            if isinstance(result, dict):
                if wants_tool and not self.ignore_tools:
                    return None, result
                return json.dumps(result), None
            return result, None
        if wants_tool and self.tool_args is not None:
            if self.ignore_tools:
                return "Sure! Here it is:\n```json\n" + json.dumps(self.tool_args) + "\n```", None
            return None, self.tool_args
        if (
            self.tool_args is not None
            and not wants_tool
            and (self.reject_tools or body.get("response_format"))
        ):
            return "Here you go: " + json.dumps(self.tool_args), None
        return self.reply, None


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep pytest output clean

    def _finish(self, tool: bool) -> str | None:
        reason = self.owner.finish_reason
        return "tool_calls" if tool and reason == "stop" else reason

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.rstrip("/") == "/v1/models":
            self._json(
                200, {"object": "list", "data": [{"id": self.owner.model_name, "object": "model"}]}
            )
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        fake = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": "not found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "invalid JSON"}})
            return
        fake._record(body, {k.lower(): v for k, v in self.headers.items()})
        if fake.on_request is not None:
            fake.on_request()
        try:
            fake._released.wait(timeout=120)
            delay = fake.judge_delay if fake.is_judge(body) else fake.delay
            if delay:
                time.sleep(delay)
            if fake.drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fake.status is not None:
                self._json(fake.status, {"error": {"message": fake.error_message, "type": "fake"}})
                return
            if fake.reject_tools and body.get("tools"):
                self._json(
                    400,
                    {
                        "error": {
                            "message": "tools are not supported",
                            "type": "invalid_request_error",
                        }
                    },
                )
                return
            if fake.reject_response_format and body.get("response_format"):
                self._json(
                    400,
                    {
                        "error": {
                            "message": "response_format is not supported",
                            "type": "invalid_request_error",
                        }
                    },
                )
                return
            text, tool_args = fake._answer(body)
            if body.get("stream"):
                self._stream(body, text, tool_args)
            else:
                completion = _completion(body, text, tool_args, fake.model_name)
                completion["choices"][0]["finish_reason"] = self._finish(tool_args is not None)
                self._json(200, completion)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer

    def _stream(
        self, body: dict[str, Any], text: str | None, tool_args: dict[str, Any] | None
    ) -> None:
        fake = self.owner
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or fake.model_name,
        }

        def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        send({"role": "assistant", "content": ""})
        if tool_args is not None:
            send(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_fake",
                            "type": "function",
                            "function": {
                                "name": _tool_name(body),
                                "arguments": json.dumps(tool_args),
                            },
                        }
                    ]
                }
            )
        else:
            words = (text or "").split(" ")
            for i, word in enumerate(words):
                if fake.cut_after is not None and i >= fake.cut_after:
                    # The server died mid-reply: no finish, no [DONE], the socket just closes.
                    self.connection.shutdown(2)
                    return
                if fake.pause_after is not None and i == fake.pause_after:
                    fake._resumed.wait(timeout=120)
                if fake.chunk_delay:
                    time.sleep(fake.chunk_delay)
                send({"content": word if i == 0 else " " + word})
        send({}, self._finish(tool_args is not None))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _tool_name(body: dict[str, Any]) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return choice.get("function", {}).get("name", "answer")
    tools = body.get("tools") or [{}]
    return tools[0].get("function", {}).get("name", "answer")


def _completion(
    body: dict[str, Any], text: str | None, tool_args: dict[str, Any] | None, model_name: str
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_args is not None:
        message["tool_calls"] = [
            {
                "id": "call_fake",
                "type": "function",
                "function": {"name": _tool_name(body), "arguments": json.dumps(tool_args)},
            }
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or model_name,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_args is not None else "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def main() -> None:
    """Serve in the foreground until killed; print ``port N``, then ``request`` per request."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="a fake OpenAI-compatible server")
    parser.add_argument("--reply", default="Hello from the fake model.")
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeOpenAI()
    fake.reply, fake.chunk_delay, fake.delay = args.reply, args.chunk_delay, args.delay
    fake.on_request = lambda: print("request", flush=True)
    fake.start()
    # Default SIGTERM handling: the process dies at once, mid-stream, like a stopped server.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print(f"port {fake.port}", flush=True)
    threading.Event().wait()  # until a signal ends the process


@contextlib.contextmanager
def fake_process(
    *, reply: str = "Hello from the fake model.", chunk_delay: float = 0.0, delay: float = 0.0
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The fake server in its own process: ``(process, base_url)``; killed on exit if alive."""
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--reply",
            reply,
            "--chunk-delay",
            str(chunk_delay),
            "--delay",
            str(delay),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        yield proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def wait_for_request(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Until the fake server process has received a request (it prints ``request``)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), timeout)
    if line.strip() != "request":
        raise AssertionError(f"expected a request, the fake server said {line!r}")


if __name__ == "__main__":
    main()
