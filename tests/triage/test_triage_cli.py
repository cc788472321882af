"""``tandem triage`` (JSONL contract, bad lines) and ``tandem triage eval``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from console.triage import LEVELS, REASONS

TANDEM = [sys.executable, "-m", "console.cli"]


def run(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(TANDEM + args, input=stdin, capture_output=True, timeout=60, check=False)


def test_jsonl_contract_keeps_order_and_reports_bad_lines() -> None:
    lines = [
        json.dumps({"id": "a", "text": "I want to speak to a real person"}).encode(),
        b"not json at all",
        json.dumps(
            {
                "id": 2,
                "messages": [
                    {"role": "customer", "text": "how do I change my PIN?"},
                    {"role": "bot", "text": "In the app under Card > PIN."},
                    {"role": "customer", "text": "thanks!"},
                ],
            }
        ).encode(),
        b"",
        b"\xff\xfe\x00binary",
        json.dumps({"id": "c", "text": ""}).encode(),
        json.dumps({"id": "d", "text": 5}).encode(),
        json.dumps({"id": ["e"], "text": "hi"}).encode(),
        json.dumps({"id": "f", "messages": "hello"}).encode(),
        json.dumps({"id": "g", "messages": [{"role": "wizard", "text": "x"}]}).encode(),
        json.dumps(["a", "list"]).encode(),
        json.dumps({"id": "big", "text": "x" * 1_100_000}).encode(),
        json.dumps({"id": "z", "text": "my card was stolen"}).encode(),
    ]
    proc = run(["triage", "-"], b"\n".join(lines) + b"\n")
    assert proc.returncode == 1
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == ["a", 2, "z"]
    for o in out:
        assert set(o) == {"id", "level", "score", "reasons", "lang"} and o["lang"] == "en"
        assert o["level"] in LEVELS and 0 <= o["score"] <= 1 and set(o["reasons"]) <= set(REASONS)
    assert out[0]["level"] == "empathy" and out[0]["reasons"][0] == "human_request"
    assert out[1]["level"] == "calm"
    assert out[2]["level"] == "urgent" and "fraud" in out[2]["reasons"]
    err = proc.stderr.decode()
    for lineno in (2, 5, 6, 7, 8, 9, 10, 11, 12):
        assert f"line {lineno}:" in err, err
    assert "line 4:" not in err  # blank lines are not errors
    assert "Traceback" not in err
    assert "too long" in err
    assert "UTF-8" in err or "binary" in err


def test_reads_a_file_and_stdin_by_default(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text('{"id": "x", "text": "you are useless, I am closing my account"}\n')
    a = run(["triage", str(f)])
    b = run(["triage"], f.read_bytes())
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout
    v = json.loads(a.stdout)
    assert v["level"] in ("empathy", "urgent") and "churn_threat" in v["reasons"]


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", str(tmp_path / "nope.jsonl")]) == 1
    assert "nope.jsonl" in capsys.readouterr().err
    assert main(["triage", "eval", str(tmp_path / "nope.csv")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["triage", "eval"]) == 1
    assert "needs a CSV" in capsys.readouterr().err


def _csv(path: Path) -> Path:
    rows = [
        "slice,conversation,text,needs_empathy",
        "demo_handoff,c1,I want to talk to a human,1",
        "demo_handoff,c2,get me a real person now,1",
        "demo_routine,c3,how do I order a new card?,0",
        "demo_routine,c4,what are the fees for euros?,0",
        "real_demo,c5,hello,0",
        'real_demo,c5,"still not working, this is ridiculous",1',
        "real_demo,c6,thanks that worked,0",
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_eval_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path / "dev.csv")
    assert main(["triage", "eval", str(path)]) == 0
    table = capsys.readouterr().out
    assert "demo_handoff" in table and "real (pooled)" in table
    assert main(["triage", "eval", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["demo_handoff"]["recall"] == 1.0
    assert data["demo_routine"]["specificity"] == 1.0
    assert data["real (pooled)"]["f1"] == 1.0
    assert data["real_demo"]["n"] == 3


def test_eval_curve_moves_the_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path / "dev.csv")
    assert main(["triage", "eval", str(path), "--curve"]) == 0
    lines = capsys.readouterr().out.splitlines()
    points = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [p[0] for p in points] == [
        "0.30",
        "0.35",
        "0.40",
        "0.45",
        "0.50",
        "0.55",
        "0.60",
        "0.65",
        "0.70",
    ]
    assert "<- shipped" in lines[2 + 4]
    recalls = [float(p[2]) for p in points]
    assert recalls == sorted(recalls, reverse=True)  # a higher threshold never flags more
    assert main(["triage", "eval", str(path), "--curve", "--json"]) == 1
    assert main(["triage", "-", "--curve"]) == 1


def test_eval_rejects_bad_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["triage", "eval", str(bad)]) == 1
    assert "missing column" in capsys.readouterr().err
    bad.write_text("slice,conversation,text,needs_empathy\nx,c,hi,maybe\n")
    assert main(["triage", "eval", str(bad)]) == 1
    assert "0 or 1" in capsys.readouterr().err
    bad.write_bytes(b"slice,conversation,text,needs_empathy\nx,c,\xff\xfe,1\n")
    assert main(["triage", "eval", str(bad)]) == 1
    assert "UTF-8" in capsys.readouterr().err


def test_bench_runs_on_generated_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        main(["bench", "triage", "--messages", "300", "--data", str(tmp_path / "absent.csv")]) == 0
    )
    out = capsys.readouterr().out
    assert "generated sentences" in out and "messages/s" in out


def test_triage_package_does_not_import_textual() -> None:
    code = "import sys, console.triage, console.triage.jsonl, console.triage.evaluate; print('textual' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_output_never_carries_terminal_escapes() -> None:
    line = json.dumps(
        {"id": "a\x1b[31m\x9b2Jb\u202e", "text": "\x1b]0;pwned\x07 hello"}, ensure_ascii=False
    )
    proc = run(["triage"], line.encode() + b"\n")
    assert proc.returncode == 0
    assert all(32 <= b < 127 for b in proc.stdout.rstrip(b"\n")), proc.stdout
    assert json.loads(proc.stdout)["id"] == "a\x1b[31m\x9b2Jb\u202e"


def test_eval_reads_a_multilingual_set_and_reports_languages_and_reasons(tmp_path: Path) -> None:
    lines = [
        {
            "id": "x1",
            "lang": "de",
            "needs_human": True,
            "reason": "bereavement",
            "text": "Mein Mann ist gestorben",
        },
        {"id": "x2", "lang": "de", "needs_human": False, "text": "Wie ändere ich meine PIN?"},
        {
            "id": "x3",
            "lang": "fr",
            "needs_human": True,
            "reason": "fraud",
            "text": "Quelqu'un a utilisé ma carte",
        },
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", "utf-8")
    proc = run(["triage", "eval", str(path), "--json"])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["languages"]["de"]["recall"] == 1.0 and out["languages"]["de"]["specificity"] == 1.0
    assert (
        out["reasons"]["fraud"]["recall"] == 1.0 and out["languages"]["fr"]["lang_accuracy"] == 1.0
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n', "utf-8")
    proc = run(["triage", "eval", str(bad)])
    assert proc.returncode != 0 and b"need id, lang, needs_human" in proc.stderr
    assert b"Traceback" not in proc.stderr
