"""The optional LLM second opinion, against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fake_openai import FakeOpenAI

from console.config import LLMConfig
from console.llm import LLM, LLMError
from console.triage import TriageEngine, Verdict
from console.triage.judge import SCHEMA, combine, parse_opinion, second_opinion


def test_combine_only_raises() -> None:
    calm = Verdict("calm", 0.1, [])
    v = combine(calm, "empathy", ["frustration"])
    assert v.level == "empathy" and v.needs_human and v.reasons == ["frustration"]
    flagged = Verdict("urgent", 0.9, ["fraud"])
    assert combine(flagged, "calm", []).level == "urgent"  # the model cannot calm a flag
    # urgent needs safety or fraud among the model's reasons
    assert combine(calm, "urgent", ["frustration"]).level == "empathy"
    assert combine(calm, "urgent", ["safety"]).level == "urgent"
    assert combine(calm, "watch", []).reasons == ["negative_sentiment"]  # never a bare flag


def test_parse_opinion_drops_unknowns() -> None:
    assert parse_opinion({"level": "watch", "reasons": ["frustration", "made_up", 3]}) == (
        "watch",
        ["frustration"],
    )
    with pytest.raises(ValueError):
        parse_opinion({"level": "panic", "reasons": []})


async def test_second_opinion_over_http(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {"level": "empathy", "reasons": ["vulnerability"]}
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, model="fake", timeout=5))
    messages = [
        {"role": "customer", "text": "I guess it doesn't matter anymore. Card 4111 1111 1111 1111"}
    ]
    offline = TriageEngine().score_conversation(messages)
    combined, level, reasons = await second_opinion(llm, messages, offline)
    assert (level, reasons) == ("empathy", ["vulnerability"])
    assert combined.needs_human and "vulnerability" in combined.reasons
    body = fake_openai.last
    assert body["tools"][0]["function"]["parameters"] == SCHEMA
    assert "4111 1111 1111 1111" not in fake_openai.all_text()  # redacted before leaving
    # Customer text travels as JSON data, not as instructions.
    assert json.dumps("I guess it doesn't matter anymore.")[1:-1] in body["messages"][1]["content"]


async def test_second_opinion_errors_are_typed(fake_openai: FakeOpenAI) -> None:
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, model="fake", timeout=5))
    offline = Verdict("calm", 0.1, [])
    fake_openai.tool_args = {"level": "catastrophic", "reasons": []}
    with pytest.raises(LLMError):
        await second_opinion(llm, [{"role": "customer", "text": "hi"}], offline)
    fake_openai.status = 500
    with pytest.raises(LLMError):
        await second_opinion(llm, [{"role": "customer", "text": "hi"}], offline)


def _run(args: list[str], stdin: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_cli_llm_flag(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TANDEM_"))}
    lines = b'{"id": 1, "text": "how do I change my PIN?"}\n{"id": 2, "text": "ok fine whatever"}\n'
    # No endpoint configured: a clear usage error.
    proc = _run(["triage", "--llm"], lines, env)
    assert proc.returncode == 1 and b"--llm needs an LLM endpoint" in proc.stderr

    env.update(OPENAI_BASE_URL=fake_openai.base_url, TANDEM_MODEL="fake")
    fake_openai.responder = lambda body: (
        {"level": "watch", "reasons": ["frustration"]}
        if "whatever" in json.dumps(body)
        else {"level": "calm", "reasons": []}
    )
    proc = _run(["triage", "--llm"], lines, env)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [1, 2]
    assert out[0]["level"] == "calm" and out[0]["judge"]["level"] == "calm"
    assert out[1]["judge"] == {
        "level": "watch",
        "reasons": ["frustration"],
        "offline_level": out[1]["judge"]["offline_level"],
    }
    assert out[1]["level"] in ("watch", "empathy")

    # The endpoint failing leaves the offline verdicts, with one notice.
    fake_openai.reset()
    fake_openai.status = 503
    proc = _run(["triage", "--llm"], lines, env)
    assert proc.returncode == 0
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert len(out) == 2 and all("error" in o["judge"] for o in out)
    assert proc.stderr.decode().count("second opinion unavailable") == 1
