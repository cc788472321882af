"""console.llm and console.config against a fake OpenAI-compatible server (real client, real HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI

from console.config import ConfigError, LLMConfig, load_config
from console.llm import (
    LLM,
    LLMError,
    LLMIncomplete,
    LLMMalformed,
    LLMTimeout,
    LLMUnavailable,
    parse_json_object,
)

SCHEMA = {
    "type": "object",
    "properties": {"reply": {"type": "string"}, "handoff": {"type": "boolean"}},
    "required": ["reply", "handoff"],
}


def _llm(fake: FakeOpenAI, timeout: float = 5.0) -> LLM:
    return LLM(LLMConfig(base_url=fake.base_url, api_key="test-key", model="m1", timeout=timeout))


def test_config_defaults_disabled() -> None:
    cfg = load_config(env={})
    assert not cfg.enabled
    assert "not configured" in cfg.describe()


def test_config_env_wins_over_file(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[llm]\nbase_url = "http://file/v1/"\nmodel = "from-file"\ntimeout = 3\n')
    cfg = load_config(env={"TANDEM_CONFIG": str(path), "TANDEM_MODEL": "from-env"})
    assert cfg.enabled and cfg.base_url == "http://file/v1"
    assert cfg.model == "from-env" and cfg.timeout == 3.0
    assert "secret" not in load_config(env={"OPENAI_API_KEY": "secret"}).describe()


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(env={"TANDEM_LLM_TIMEOUT": "soon"})
    with pytest.raises(ConfigError):
        load_config(env={"OPENAI_BASE_URL": "localhost:8000/v1"})
    with pytest.raises(ConfigError):
        load_config(env={"TANDEM_CONFIG": str(tmp_path / "missing.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm\n")
    with pytest.raises(ConfigError):
        load_config(env={"TANDEM_CONFIG": str(bad)})


def test_parse_json_object_tolerant() -> None:
    assert parse_json_object('Sure!\n```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('here {"a": {"b": [1, 2]}} done') == {"a": {"b": [1, 2]}}
    assert parse_json_object('{oops} then {"ok": true}') == {"ok": True}
    assert parse_json_object('{"reply": "line one\nline two"}') == {"reply": "line one\nline two"}
    with pytest.raises(ValueError):
        parse_json_object("no json here")


async def test_unconfigured_raises_unavailable() -> None:
    llm = LLM(LLMConfig())
    with pytest.raises(LLMUnavailable):
        await llm.complete_json([{"role": "user", "content": "hi"}], schema=SCHEMA)
    with pytest.raises(LLMUnavailable):
        async for _ in llm.stream([{"role": "user", "content": "hi"}]):
            pass


async def test_stream_yields_deltas(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = "one two three four"
    pieces = [p async for p in _llm(fake_openai).stream([{"role": "user", "content": "count"}])]
    assert len(pieces) == 4
    assert "".join(pieces) == "one two three four"
    body = fake_openai.last
    assert body["stream"] is True and body["model"] == "m1"
    assert fake_openai.headers[-1]["authorization"] == "Bearer test-key"


async def test_complete_text(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = "plain answer"
    assert await _llm(fake_openai).complete([{"role": "user", "content": "q"}]) == "plain answer"


async def test_complete_json_tool_call(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {"reply": "hi", "handoff": True}
    data = await _llm(fake_openai).complete_json(
        [{"role": "user", "content": "q"}], schema=SCHEMA, name="bot_answer"
    )
    assert data == {"reply": "hi", "handoff": True}
    body = fake_openai.last
    assert body["tools"][0]["function"]["name"] == "bot_answer"
    assert body["tools"][0]["function"]["parameters"] == SCHEMA
    assert body["tool_choice"]["function"]["name"] == "bot_answer"


async def test_complete_json_server_ignoring_tools(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {"reply": "fenced", "handoff": False}
    fake_openai.ignore_tools = True
    data = await _llm(fake_openai).complete_json([{"role": "user", "content": "q"}], schema=SCHEMA)
    assert data == {"reply": "fenced", "handoff": False}


async def test_complete_json_retries_with_response_format(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {"reply": "via schema", "handoff": False}
    fake_openai.reject_tools = True
    data = await _llm(fake_openai).complete_json([{"role": "user", "content": "q"}], schema=SCHEMA)
    assert data["reply"] == "via schema"
    assert len(fake_openai.requests) == 2
    assert fake_openai.requests[1]["response_format"]["type"] == "json_schema"
    assert "tools" not in fake_openai.requests[1]


async def test_complete_json_missing_keys_is_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {"reply": "no handoff field"}
    with pytest.raises(LLMError, match="handoff"):
        await _llm(fake_openai).complete_json([{"role": "user", "content": "q"}], schema=SCHEMA)
    fake_openai.tool_args = None
    fake_openai.reply = "I cannot do JSON, sorry"
    with pytest.raises(LLMError):
        await _llm(fake_openai).complete_json([{"role": "user", "content": "q"}], schema=SCHEMA)


async def test_timeout_is_typed_and_prompt(fake_openai: FakeOpenAI) -> None:
    # The server holds its answer: only the client's own timeout can end the call.
    fake_openai.hold()
    fake_openai.tool_args = {"reply": "late", "handoff": False}
    with pytest.raises(LLMTimeout):
        await _llm(fake_openai).complete_json(
            [{"role": "user", "content": "q"}], schema=SCHEMA, timeout=0.3
        )
    assert len(fake_openai.requests) == 1  # it was asked, and gave up waiting


async def test_stream_stall_between_chunks_times_out(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = "a b c"
    fake_openai.chunk_delay = 1.5
    got: list[str] = []
    with pytest.raises(LLMTimeout):
        async for piece in _llm(fake_openai).stream(
            [{"role": "user", "content": "q"}], timeout=0.4
        ):
            got.append(piece)
    assert "".join(got) == ""


async def test_http_errors_are_typed(fake_openai: FakeOpenAI) -> None:
    fake_openai.status = 500
    with pytest.raises(LLMError, match="500") as info:
        await _llm(fake_openai).complete([{"role": "user", "content": "q"}])
    assert not isinstance(info.value, (LLMTimeout, LLMUnavailable))
    fake_openai.status = 401
    with pytest.raises(LLMUnavailable):
        await _llm(fake_openai).complete([{"role": "user", "content": "q"}])


async def test_unreachable_endpoint_is_unavailable() -> None:
    with FakeOpenAI() as fake:
        url = fake.base_url  # a port that was free a moment ago and is closed now
    llm = LLM(LLMConfig(base_url=url, model="m", timeout=2))
    with pytest.raises(LLMUnavailable):
        await llm.complete([{"role": "user", "content": "q"}])


async def test_pii_never_leaves(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {"reply": "ok", "handoff": False}
    secret = (
        "card 4111 1111 1111 1111, iban GB82 WEST 1234 5698 7654 32, "
        "mail maya.lee@example.com, phone +44 7911 123456"
    )
    llm = _llm(fake_openai)
    await llm.complete_json(
        [{"role": "system", "content": "be kind"}, {"role": "user", "content": secret}],
        schema=SCHEMA,
    )
    _ = [
        p
        async for p in llm.stream([{"role": "user", "content": [{"type": "text", "text": secret}]}])
    ]
    sent = fake_openai.all_text()
    for leak in ("4111", "GB82", "maya.lee", "example.com", "7911"):
        assert leak not in sent
    for placeholder in ("[card]", "[iban]", "[email]", "[phone]"):
        assert placeholder in sent


async def test_complete_json_asks_in_words_when_nothing_structured_is_supported(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.tool_args = {"reply": "plain", "handoff": True}
    fake_openai.reject_tools = True
    fake_openai.reject_response_format = True
    data = await _llm(fake_openai).complete_json([{"role": "user", "content": "q"}], schema=SCHEMA)
    assert data == {"reply": "plain", "handoff": True}
    assert len(fake_openai.requests) == 3
    last = fake_openai.requests[2]
    assert "tools" not in last and "response_format" not in last
    assert '"reply", "handoff"' in last["messages"][-1]["content"]


async def test_dropped_connection_is_unavailable(fake_openai: FakeOpenAI) -> None:
    fake_openai.drop = True
    with pytest.raises(LLMUnavailable):
        await _llm(fake_openai).complete([{"role": "user", "content": "q"}])
    with pytest.raises(LLMUnavailable):
        async for _ in _llm(fake_openai).stream([{"role": "user", "content": "q"}]):
            pass


def test_http_library_errors_are_translated() -> None:
    class ReadTimeout(Exception):
        pass

    class RemoteProtocolError(Exception):
        pass

    llm = LLM(LLMConfig(base_url="http://x/v1"))
    assert isinstance(llm._translate(ReadTimeout("slow"), 2.0), LLMTimeout)
    assert isinstance(llm._translate(RemoteProtocolError("gone"), 2.0), LLMUnavailable)
    other = llm._translate(ValueError("odd internal detail"), 2.0)
    # The notice is ours; the exception's own words (internals, the reply) stay in the log.
    assert isinstance(other, LLMError) and str(other) == "the LLM reply could not be read"


async def _read(stream: Any) -> tuple[str, BaseException | None]:
    text = ""
    try:
        async for piece in stream:
            text += piece
    except LLMError as exc:
        return text, exc
    return text, None


async def test_a_stream_is_complete_only_when_the_model_finished_it(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.reply = "Freeze it in the Card tab, then report it lost."
    assert await _read(_llm(fake_openai).stream([{"role": "user", "content": "hi"}])) == (
        fake_openai.reply,
        None,
    )
    fake_openai.finish_reason = "length"
    text, error = await _read(_llm(fake_openai).stream([{"role": "user", "content": "hi"}]))
    assert text == fake_openai.reply  # what came is kept, and said to be partial
    assert isinstance(error, LLMIncomplete) and error.kind == "incomplete"
    assert "token limit" in str(error)
    fake_openai.finish_reason = None
    text, error = await _read(_llm(fake_openai).stream([{"role": "user", "content": "hi"}]))
    assert isinstance(error, LLMIncomplete) and "without a finish reason" in str(error)


async def test_a_stream_cut_mid_reply_is_incomplete(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = "Freeze it in the Card tab, then report it lost."
    fake_openai.cut_after = 3
    text, error = await _read(_llm(fake_openai).stream([{"role": "user", "content": "hi"}]))
    assert text == "Freeze it in"
    assert isinstance(error, LLMIncomplete)


async def test_a_structured_reply_at_the_token_limit_is_incomplete(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.tool_args = {"reply": "Freeze it", "handoff": False}
    fake_openai.finish_reason = "length"
    with pytest.raises(LLMIncomplete, match="token limit"):
        await _llm(fake_openai).complete_json([{"role": "user", "content": "x"}], schema=SCHEMA)
    with pytest.raises(LLMIncomplete):
        await _llm(fake_openai).complete([{"role": "user", "content": "x"}])
    fake_openai.finish_reason = "stop"
    data = await _llm(fake_openai).complete_json([{"role": "user", "content": "x"}], schema=SCHEMA)
    assert data["reply"] == "Freeze it"


async def test_malformed_replies_say_so(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = "no json here at all"
    with pytest.raises(LLMMalformed) as caught:
        await _llm(fake_openai).complete_json([{"role": "user", "content": "x"}], schema=SCHEMA)
    assert caught.value.kind == "malformed"
