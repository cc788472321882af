"""The optional LLM second opinion, against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from console.config import LLMConfig
from console.llm import LLM, LLMError
from console.triage import TriageEngine, Verdict
from console.triage.judge import (
    SCHEMA,
    WHY_CHARS,
    Judge,
    combine,
    parse_opinion,
    second_opinion,
)

ENGINE = TriageEngine()


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
    fake_openai.judge_args = {"level": "empathy", "reasons": ["vulnerability"]}
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, model="fake", timeout=5))
    messages = [
        {"role": "customer", "text": "I guess it doesn't matter anymore. Card 4111 1111 1111 1111"}
    ]
    offline = TriageEngine().score_conversation(messages)
    combined, level, reasons = await second_opinion(llm, messages, offline)
    assert (level, reasons) == ("empathy", ["vulnerability"])
    assert combined.needs_human and "vulnerability" in combined.reasons
    body = fake_openai.judge_requests[-1]
    assert body["tools"][0]["function"]["parameters"] == SCHEMA
    assert "4111 1111 1111 1111" not in fake_openai.judge_text()  # redacted before leaving
    # Customer text travels as JSON data, not as instructions.
    assert json.dumps("I guess it doesn't matter anymore.")[1:-1] in body["messages"][1]["content"]


async def test_second_opinion_errors_are_typed(fake_openai: FakeOpenAI) -> None:
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, model="fake", timeout=5))
    offline = Verdict("calm", 0.1, [])
    fake_openai.judge_args = {"level": "catastrophic", "reasons": []}
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
    fake_openai.judge_responder = lambda body: (
        {"level": "watch", "reasons": ["frustration"]}
        if "whatever" in json.dumps(body)
        else {"level": "calm", "reasons": []}
    )
    proc = _run(["triage", "--llm"], lines, env)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [1, 2]
    assert out[0]["level"] == "calm" and out[0]["judge"]["level"] == "calm"
    judged = out[1]["judge"]
    assert (judged["level"], judged["reasons"], judged["why"]) == ("watch", ["frustration"], "")
    assert judged["offline_level"] in ("calm", "watch", "empathy")
    assert out[1]["level"] in ("watch", "empathy")

    # The endpoint failing leaves the offline verdicts, with one notice.
    fake_openai.reset()
    fake_openai.status = 503
    proc = _run(["triage", "--llm"], lines, env)
    assert proc.returncode == 0
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert len(out) == 2 and all("error" in o["judge"] for o in out)
    assert proc.stderr.decode().count("second opinion unavailable") == 1


# -- the Judge: structured verdict, counted failures, never lower -------------------------------


def _judge(fake: FakeOpenAI, timeout: float = 5.0) -> Judge:
    return Judge(LLM(LLMConfig(base_url=fake.base_url, model="fake", timeout=timeout)))


async def test_the_judge_raises_and_marks_its_reasons(fake_openai: FakeOpenAI) -> None:
    fake_openai.judge_args = {
        "level": "empathy",
        "reasons": ["vulnerability", "not_a_reason"],
        "why": "Sounds [b]overwhelmed[/b]\x1b[31m and alone " + "very " * 80,
    }
    judge = _judge(fake_openai)
    messages = [{"role": "customer", "text": "whatever, it doesn't matter now"}]
    offline = ENGINE.score_conversation(messages)
    assert not offline.needs_human
    combined, opinion = await judge.review(messages, offline)
    assert opinion is not None and opinion.reasons == ("vulnerability",)
    assert combined.level == "empathy" and combined.model_reasons == ["vulnerability"]
    why = combined.model_why
    assert why.startswith("Sounds") and len(why) <= WHY_CHARS
    assert "[" not in why and "\x1b" not in why
    assert judge.stats.asked == 1 and judge.stats.raised == 1


async def test_the_judge_never_lowers_a_hard_floor(fake_openai: FakeOpenAI) -> None:
    fake_openai.judge_args = {"level": "calm", "reasons": [], "why": "routine"}
    judge = _judge(fake_openai)
    fraud = [{"role": "customer", "text": "someone stole my card and emptied my account"}]
    offline = ENGINE.score_conversation(fraud)
    assert offline.level == "urgent"
    combined, opinion = await judge.review(fraud, offline)
    # Already urgent: not even asked, and nothing left the machine.
    assert opinion is None and combined is offline and judge.stats.skipped == 1
    assert fake_openai.judge_requests == []
    person = [{"role": "customer", "text": "I want to speak to a real person"}]
    offline = ENGINE.score_conversation(person)
    combined, opinion = await judge.review(person, offline)
    assert opinion is not None and opinion.level == "calm"
    assert combined.level == offline.level == "empathy" and "human_request" in combined.reasons


@pytest.mark.parametrize(
    "setup",
    [
        {"judge_args": {"level": "panic", "reasons": []}},
        {"judge_args": {"level": "watch", "reasons": "fraud"}},
        {"judge_reply": "I think the customer is fine, really."},
    ],
)
async def test_malformed_answers_are_ignored_and_counted(
    fake_openai: FakeOpenAI, setup: dict[str, object]
) -> None:
    for key, value in setup.items():
        setattr(fake_openai, key, value)
    judge = _judge(fake_openai)
    messages = [{"role": "customer", "text": "hi, quick question about fees"}]
    offline = ENGINE.score_conversation(messages)
    combined, opinion = await judge.review(messages, offline)
    assert opinion is None and combined is offline
    assert judge.stats.malformed == 1 and judge.stats.raised == 0


async def test_a_slow_model_times_out_to_the_offline_verdict(fake_openai: FakeOpenAI) -> None:
    fake_openai.judge_args = {"level": "urgent", "reasons": ["safety"], "why": "too late"}
    fake_openai.judge_delay = 3.0
    judge = _judge(fake_openai, timeout=0.3)
    messages = [{"role": "customer", "text": "ok"}]
    offline = ENGINE.score_conversation(messages)
    combined, opinion = await judge.review(messages, offline)
    assert opinion is None and combined is offline and judge.stats.timeouts == 1


async def test_what_the_judge_sends_is_redacted(fake_openai: FakeOpenAI) -> None:
    fake_openai.judge_args = {"level": "watch", "reasons": [], "why": "fine"}
    judge = _judge(fake_openai)
    text = "my card 4111 1111 1111 1111 and mail jane.doe@example.com, IBAN GB82WEST12345698765432"
    await judge.review([{"role": "customer", "text": text}], Verdict("calm", 0.1, []))
    sent = fake_openai.judge_text()
    for secret in ("4111 1111 1111 1111", "jane.doe@example.com", "GB82WEST12345698765432"):
        assert secret not in sent
    assert "why" in json.dumps(fake_openai.judge_requests[-1]["tools"][0]["function"]["parameters"])


def test_eval_with_llm_runs_the_same_judge(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TANDEM_"))}
    env.update(OPENAI_BASE_URL=fake_openai.base_url, TANDEM_MODEL="fake")
    fake_openai.judge_args = {"level": "empathy", "reasons": ["vulnerability"], "why": "lonely"}
    cases = [
        {
            "id": "a",
            "lang": "en",
            "needs_human": True,
            "reason": "vulnerability",
            "text": "it all feels pointless lately",
        },
        {
            "id": "b",
            "lang": "en",
            "needs_human": True,
            "reason": "fraud",
            "text": "someone stole my card",
        },
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in cases) + "\n", "utf-8")
    proc = _run(["triage", "eval", str(path), "--llm", "--json"], b"", env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["languages"]["en"]["recall"] == 1.0
    # The fraud report was already urgent offline: only the other one was sent.
    assert out["judge"] == {
        "asked": 1,
        "raised": 1,
        "skipped": 1,
        "malformed": 0,
        "timeouts": 0,
        "errors": 0,
    }
    csv_path = tmp_path / "dev.csv"
    csv_path.write_text(
        "slice,conversation,text,needs_empathy\nreal_x,c1,it all feels pointless lately,1\n",
        "utf-8",
    )
    proc = _run(["triage", "eval", str(csv_path), "--llm"], b"", env)
    assert proc.returncode == 0, proc.stderr
    assert b"LLM judge: asked 1, raised 1" in proc.stdout
