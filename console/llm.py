"""The one wrapper around ``openai.AsyncOpenAI`` that every part of Tandem uses.

Why one wrapper: personal data is redacted here (:func:`console.privacy.redact` on every
message) before any request leaves the machine, so no caller can forget; and every failure
becomes one of three exceptions, so callers fall back to their embedded engine with a
visible notice instead of handling a dozen ``openai`` error classes:

- :class:`LLMUnavailable`: no endpoint configured, or it cannot be reached (connection refused,
  DNS, authentication rejected).
- :class:`LLMTimeout`: the endpoint did not answer in time.
- :class:`LLMMalformed`: the reply came, but holds no usable structured answer.
- :class:`LLMIncomplete`: the reply stopped short: the token limit (``finish_reason``
  ``length``), no finish reason at all, a content filter, or the connection cut mid-stream.
  Text streamed before it is real but partial: never treat it as a finished reply.
- :class:`LLMError`: anything else (HTTP 4xx/5xx); the base class of all of them.

Each class has a ``kind`` (``error``, ``unavailable``, ``timeout``, ``malformed``,
``incomplete``) that callers record as the reason for a fallback.

Usage::

    llm = LLM(load_config())
    async for piece in llm.stream(messages, timeout=5):
        ...
    data = await llm.complete_json(messages, schema=SCHEMA, name="answer", timeout=5)

Retries are off (``max_retries=0``): a human is waiting, and the fallback is instant.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from console.config import LLMConfig
from console.privacy import redact

Message = dict[str, Any]
log = logging.getLogger("tandem.llm")


class LLMError(Exception):
    """The LLM could not produce a usable answer; ``str(exc)`` is a one-line notice."""

    kind = "error"


class LLMUnavailable(LLMError):
    """No endpoint is configured, or it cannot be reached or refuses our credentials."""

    kind = "unavailable"


class LLMTimeout(LLMError):
    """The endpoint took longer than the timeout."""

    kind = "timeout"


class LLMMalformed(LLMError):
    """The endpoint answered, but not with the structured reply that was asked for."""

    kind = "malformed"


class LLMIncomplete(LLMError):
    """The reply stopped before its proper end (token limit, no finish reason, connection cut)."""

    kind = "incomplete"


#: Bytes of one answer of the endpoint read at most (a completion of a few hundred tokens is a
#: few kilobytes, streamed some hundred): past them the answer is dropped, not kept reading.
MAX_REPLY_BYTES = 4 * 1024 * 1024


class ReplyTooLarge(Exception):
    """The endpoint's answer passed :data:`MAX_REPLY_BYTES`."""


def _capped_http_client() -> Any:
    """The openai client's own HTTP client, with every answer's body cut at
    :data:`MAX_REPLY_BYTES`; ``None`` (the default client) where that cannot be built.

    By hand, an endpoint answering with an endless JSON body made ``tandem serve`` read it
    until the timeout: 70 MB -> 1.1 GB in 5 s for one bot answer.
    """
    try:
        import openai

        # openai 1.x speaks through httpx, later ones through httpx2: whichever its client is.
        base = openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]
        httpx: Any = importlib.import_module(base)

        class Capped(httpx.AsyncByteStream):
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            async def __aiter__(self) -> Any:
                seen = 0
                async for chunk in self.inner:
                    seen += len(chunk)
                    if seen > MAX_REPLY_BYTES:
                        raise ReplyTooLarge(
                            f"the LLM reply was larger than {MAX_REPLY_BYTES // 2**20} MB"
                        )
                    yield chunk

            async def aclose(self) -> None:
                await self.inner.aclose()

        class Transport(httpx.AsyncBaseTransport):
            def __init__(self) -> None:
                self.inner = httpx.AsyncHTTPTransport()

            async def handle_async_request(self, request: Any) -> Any:
                response = await self.inner.handle_async_request(request)
                response.stream = Capped(response.stream)
                return response

            async def aclose(self) -> None:
                await self.inner.aclose()

        return openai.DefaultAsyncHttpxClient(transport=Transport())
    except Exception as exc:  # another openai or HTTP library: its defaults, uncapped
        log.warning("LLM answers are not size-capped: %s: %s", type(exc).__name__, exc)
        return None


#: Characters a streamed reply may hold per token asked for (``max_tokens``): generous, as
#: English runs at about four a token, so only an endpoint that ignores the limit meets it.
CHARS_PER_TOKEN = 8

# Finish reasons that mean the model ended its reply itself.
_FINISHED = frozenset({"stop", "tool_calls", "function_call", "eos", "end_turn"})


def finish_problem(reason: str | None) -> str | None:
    """Why a reply with this ``finish_reason`` is incomplete, or ``None`` when it is finished."""
    if reason in _FINISHED:
        return None
    if reason == "length":
        return "the LLM stopped at its token limit (finish_reason length)"
    if reason is None:
        return "the LLM reply ended without a finish reason"
    return f"the LLM reply was cut off (finish_reason {reason})"


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json_object(text: str) -> dict[str, Any]:
    """Read the first JSON object in a model's free-text reply.

    Small models wrap JSON in code fences or chat around it even when asked not to; this
    takes a fenced block if there is one, else the first balanced ``{...}``.

    :raises ValueError: there is no JSON object in ``text``
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    # strict=False: grammar-constrained local models put raw newlines inside strings.
    decoder = json.JSONDecoder(strict=False)
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(value, dict):
                return value
            start = candidate.find("{", start + 1)
    raise ValueError("no JSON object in the reply")


def redact_messages(
    messages: Sequence[Message], redactor: Callable[[str], str] = redact
) -> list[Message]:
    """Copies of ``messages`` with personal data redacted from every text part."""
    out: list[Message] = []
    for message in messages:
        copy = dict(message)
        content = copy.get("content")
        if isinstance(content, str):
            copy["content"] = redactor(content)
        elif isinstance(content, list):
            copy["content"] = [
                {**part, "text": redactor(part["text"])}
                if isinstance(part, dict) and isinstance(part.get("text"), str)
                else part
                for part in content
            ]
        out.append(copy)
    return out


def _missing_keys(data: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    return [key for key in schema.get("required", []) if key not in data]


class LLM:
    """An OpenAI-compatible chat endpoint, with redaction and typed errors.

    :param config: from :func:`console.config.load_config`
    :param redactor: replaces personal data in text; override only in tests of the wrapper
    """

    def __init__(self, config: LLMConfig, *, redactor: Callable[[str], str] = redact) -> None:
        self.config = config
        self._redact = redactor
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def enabled(self) -> bool:
        """True when an endpoint is configured."""
        return self.config.enabled

    @property
    def model(self) -> str:
        """The model name sent on every request."""
        return self.config.model

    def _get_client(self) -> Any:
        # An AsyncOpenAI client's connection pool belongs to the event loop that created it;
        # tests and `tandem demo` may run several loops over one LLM object.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.config.base_url,
                # Local servers need no key, but the client insists on one.
                api_key=self.config.api_key or "not-needed",
                timeout=self.config.timeout,
                max_retries=0,
                http_client=_capped_http_client(),
            )
            self._client_loop = loop
        return self._client

    def _check_enabled(self) -> None:
        if not self.config.enabled:
            raise LLMUnavailable(
                "no LLM endpoint configured (set OPENAI_BASE_URL or OPENAI_API_KEY)"
            )

    def _translate(self, exc: BaseException, timeout: float) -> LLMError:
        import openai

        if isinstance(exc, LLMError):
            return exc
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ReplyTooLarge):
                return LLMMalformed(str(cause))
            cause = cause.__cause__ or cause.__context__
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError, openai.APITimeoutError)):
            return LLMTimeout(f"the LLM did not answer within {timeout:g}s")
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailable(
                f"cannot reach the LLM at {self.config.base_url or 'api.openai.com'}"
            )
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return LLMUnavailable(
                f"the LLM endpoint refused our credentials (HTTP {exc.status_code})"
            )
        if isinstance(exc, openai.APIStatusError):
            return LLMError(f"the LLM endpoint answered HTTP {exc.status_code}")
        if isinstance(exc, openai.OpenAIError):
            return LLMError(f"LLM error: {type(exc).__name__}")
        # Mid-stream, the HTTP library's own errors can surface unwrapped (httpx ReadTimeout,
        # RemoteProtocolError when a server drops the connection).
        name = type(exc).__name__
        if "Timeout" in name:
            return LLMTimeout(f"the LLM did not answer within {timeout:g}s")
        if any(word in name for word in ("Connect", "Protocol", "Network", "Read", "Write")):
            return LLMUnavailable(f"lost the connection to the LLM ({name})")
        # Anything else is a reply our client could not read (a garbage body makes the SDK
        # fail inside its own parsing). The notice reaches agents and is stored: it says what
        # happened in our words; the exception's own text, which can quote the reply or our
        # internals, goes to the log only.
        log.warning("unreadable LLM reply: %s: %s", name, exc)
        return LLMMalformed("the LLM reply could not be read")

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        timeout: float | None = None,
        temperature: float = 0.4,
        max_tokens: int = 400,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply's text as it arrives (deltas, in order).

        A stream is complete only when the model finished it: a ``finish_reason`` of ``stop``
        (or a tool call). The token limit, a stream that ends without a finish reason, and a
        connection lost after text arrived raise :class:`LLMIncomplete` after the last piece.

        :param timeout: seconds allowed for the first piece and for each gap between pieces
        :raises LLMUnavailable, LLMTimeout, LLMIncomplete, LLMError: before or during the stream
        """
        self._check_enabled()
        limit = timeout if timeout is not None else self.config.timeout
        payload = redact_messages(messages, self._redact)
        finish: str | None = None
        received = False
        # An endpoint that ignores max_tokens would stream on for as long as it likes (a
        # megabyte of draft filled the console's editor for minutes): past this many
        # characters the reply is cut, as the model's own token limit cuts it.
        budget = max_tokens * CHARS_PER_TOKEN
        try:
            # Outside the timeout: the first call imports openai, which can take seconds on a
            # busy machine and is none of the endpoint's time.
            client = self._get_client()
            async with asyncio.timeout(limit):
                response = await client.chat.completions.create(
                    model=self.config.model,
                    messages=payload,
                    stream=True,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    timeout=limit,
                )
            iterator = response.__aiter__()
            try:
                while budget > 0:
                    try:
                        async with asyncio.timeout(limit):
                            chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    for choice in chunk.choices or ():
                        finish = getattr(choice, "finish_reason", None) or finish
                        text = getattr(choice.delta, "content", None) if choice.delta else None
                        if text and budget > 0:
                            received = True
                            text = text[:budget]
                            budget -= len(text)
                            yield text
            finally:
                await response.close()
        except Exception as exc:  # CancelledError and GeneratorExit pass through untouched
            error = self._translate(exc, limit)
            if received and isinstance(error, LLMUnavailable):
                # Part of the reply is here and the rest never will be: the text is real but
                # cut off, which the caller must show as such rather than as a failure to start.
                raise LLMIncomplete(f"{error} after part of the reply") from exc
            raise error from exc
        if budget <= 0:
            raise LLMIncomplete(
                f"the LLM wrote past its limit of {max_tokens} tokens (cut at "
                f"{max_tokens * CHARS_PER_TOKEN:,} characters)"
            )
        problem = finish_problem(finish)
        if problem is not None:
            raise LLMIncomplete(problem)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout: float | None = None,
        temperature: float = 0.4,
        max_tokens: int = 400,
    ) -> str:
        """The whole reply as one string (non-streaming)."""
        self._check_enabled()
        limit = timeout if timeout is not None else self.config.timeout
        payload = redact_messages(messages, self._redact)
        try:
            client = self._get_client()  # outside the timeout, as in stream()
            async with asyncio.timeout(limit):
                response = await client.chat.completions.create(
                    model=self.config.model,
                    messages=payload,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    timeout=limit,
                )
        except Exception as exc:
            raise self._translate(exc, limit) from exc
        if not response.choices:
            raise LLMError("the LLM returned no choices")
        problem = finish_problem(getattr(response.choices[0], "finish_reason", None))
        if problem is not None:
            raise LLMIncomplete(problem)
        return response.choices[0].message.content or ""

    async def complete_json(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any],
        name: str = "answer",
        description: str = "",
        timeout: float | None = None,
        temperature: float = 0.2,
        max_tokens: int = 500,
    ) -> dict[str, Any]:
        """A structured reply: a JSON object following ``schema`` (JSON Schema, type object).

        Asks for a forced tool call named ``name``. Servers that ignore tools and answer in
        text are read tolerantly (code fences, chatter around the object); a server that
        rejects tools with HTTP 400 is asked again with a ``json_schema`` response format, and
        one that rejects that too is asked in words for a JSON object.
        The whole exchange, including that retry, shares one ``timeout``.

        :raises LLMError: no usable object, or one without the schema's required keys
        """
        self._check_enabled()
        limit = timeout if timeout is not None else self.config.timeout
        payload = redact_messages(messages, self._redact)
        try:
            self._get_client()  # imports openai outside the timeout, as in stream()
            async with asyncio.timeout(limit):
                message = await self._structured(
                    payload, schema, name, description, limit, temperature, max_tokens
                )
        except Exception as exc:
            raise self._translate(exc, limit) from exc
        try:
            data = self._read_structured(message, name)
        except LLMError:
            raise
        except Exception as exc:  # a reply shaped unlike a chat completion (message: 5)
            raise self._translate(exc, limit) from exc
        missing = _missing_keys(data, schema)
        if missing:
            raise LLMMalformed(f"the LLM reply lacks {', '.join(missing)}")
        return data

    async def _structured(
        self,
        payload: list[Message],
        schema: dict[str, Any],
        name: str,
        description: str,
        limit: float,
        temperature: float,
        max_tokens: int,
    ) -> Any:
        import openai

        client = self._get_client()
        common: dict[str, Any] = {
            "model": self.config.model,
            "messages": payload,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "timeout": limit,
        }
        tool = {
            "type": "function",
            "function": {
                "name": name,
                "description": description or f"Return the {name}.",
                "parameters": schema,
            },
        }
        try:
            response = await client.chat.completions.create(
                tools=[tool],
                tool_choice={"type": "function", "function": {"name": name}},
                **common,
            )
        except openai.BadRequestError:
            try:
                response = await client.chat.completions.create(
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": name, "schema": schema},
                    },
                    **common,
                )
            except openai.BadRequestError:
                # Neither tools nor schemas: ask in words and read the reply tolerantly.
                keys = ", ".join(f'"{k}"' for k in schema.get("properties", {}))
                ask = {
                    "role": "system",
                    "content": f"Reply with only one JSON object with the keys {keys}, and nothing else.",
                }
                response = await client.chat.completions.create(
                    **{**common, "messages": [*payload, ask]},
                )
        if not response.choices:
            raise LLMError("the LLM returned no choices")
        # A reply cut at the token limit may still parse (a JSON string closed early by a
        # lenient reader, or an answer that lost its last sentence): never take it.
        problem = finish_problem(getattr(response.choices[0], "finish_reason", None))
        if problem is not None:
            raise LLMIncomplete(problem)
        return response.choices[0].message

    def _read_structured(self, message: Any, name: str) -> dict[str, Any]:
        for call in getattr(message, "tool_calls", None) or ():
            function = getattr(call, "function", None)
            if function is None or (function.name and function.name != name):
                continue
            try:
                return parse_json_object(function.arguments or "")
            except ValueError:
                raise LLMMalformed("the LLM's tool call arguments are not a JSON object") from None
        try:
            return parse_json_object(message.content or "")
        except ValueError:
            raise LLMMalformed("the LLM reply holds no JSON object") from None


__all__ = [
    "LLM",
    "LLMError",
    "LLMIncomplete",
    "LLMMalformed",
    "LLMTimeout",
    "LLMUnavailable",
    "finish_problem",
    "parse_json_object",
    "redact_messages",
]
