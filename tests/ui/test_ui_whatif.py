"""The what-if screen: pick a policy file, see both policies side by side, open what changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ui_support import screen_up, wait_until

from console.cli import main
from console.policy import EXAMPLES, load_settings
from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from console.ui.screens.supervisor import SupervisorScreen
from console.ui.screens.whatif import WhatIfScreen, complete_path, policy_files
from store import Store
from store import lifecycle as lc
from store.db import now

# Set TANDEM_SCREENSHOTS=DIR to save the README's screenshot of a comparison.
SHOTS = os.environ.get("TANDEM_SCREENSHOTS")


def _history(db_path: Path) -> dict[str, int]:
    """Three conversations an hour ago whose outcomes under each policy are known (as in
    tests/test_whatif.py): two "I don't know"s, a request for a person, a bereavement."""
    t0 = now() - 3600
    ids: dict[str, int] = {}
    with Store(db_path) as s:
        for name, turns in (
            ("b", [("what are the fees for transfers abroad?", True), ("hmm ok", True)]),
            ("c", [("I want to speak to a human please", None)]),
            ("d", [("my mother passed away last week", None)]),
        ):
            cid = lc.open_conversation(s, name, external_id=name, at=t0)
            for i, (text, fallback) in enumerate(turns):
                at = t0 + 10 * (i + 1)
                mid = lc.add_customer_message(s, cid, text, idempotency_key=f"{name}{i}", at=at)
                if fallback is not None:
                    lc.bot_reply(
                        s,
                        cid,
                        "I'm not sure about that one.",
                        reply_to=mid.message_id,
                        fallback=True,
                        meta={"engine": "embedded", "fallback": True},
                        at=at + 1,
                    )
            ids[name] = cid
            t0 += 100
    return ids


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "in-force.toml").write_text("escalate_level = 'empathy'\n")
    (folder / "loose.toml").write_text("max_fallbacks = 1\n")
    (folder / "urgent-bereavement.toml").write_text(
        "urgent_reasons = ['fraud', 'safety', 'bereavement']\n"
    )
    (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n")  # not a policy
    return folder


def _cli_json(db_path: Path, policy: Path, current: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    args = ["whatif", "--db", str(db_path), "--policy", str(policy), "--current", str(current)]
    assert main([*args, "--since", "7d", "--sample", "200", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    data.pop("window")
    return data


def _cells(screen: WhatIfScreen, table: str) -> list[list[str]]:
    t = screen.query_one(table)
    return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]  # type: ignore[attr-defined]


async def test_pick_a_file_see_both_sides_equal_to_the_cli_and_open_a_change(
    db_path: Path,
    policies: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Files are looked for beside the policy in force, in ./policies and in the working
    # directory: here all three are the test's folder, listed once.
    monkeypatch.chdir(policies.parent)
    ids = _history(db_path)
    in_force = policies / "in-force.toml"
    # The command's answers first (a running app takes over stdout).
    loose = _cli_json(db_path, policies / "loose.toml", in_force, capsys)
    bereavement = _cli_json(db_path, policies / "urgent-bereavement.toml", in_force, capsys)
    app = TandemApp(
        db_path,
        "sam",
        supervisor=True,
        interval=0.05,
        policy=load_settings(in_force),
        policy_path=in_force,
    )
    async with app.run_test(size=(160, 48)) as pilot:
        app.show_supervisor()
        await screen_up(pilot, SupervisorScreen)
        await pilot.press("w")  # the supervisor view's binding
        screen = await screen_up(pilot, WhatIfScreen)
        files = screen.query_one("#wi-files")
        # The test's three policies, then the examples shipped with Tandem.
        shipped = sorted(EXAMPLES.glob("*.toml"))
        count = 3 + len(shipped)
        await wait_until(pilot, lambda: files.option_count == count, what="the policy files")  # type: ignore[attr-defined]
        labels = [str(files.get_option_at_index(i).prompt) for i in range(count)]  # type: ignore[attr-defined]
        assert labels[0].endswith("in force") and "pyproject" not in " ".join(labels)
        assert [lb for lb in labels if lb.endswith("example")] == labels[3:]
        assert [lb.split()[0] for lb in labels[3:]] == [p.name for p in shipped]

        # Pick loose.toml from the list (the second file): highlighted, enter.
        files.focus()
        files.highlighted = 1  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: screen.result is not None,
            what="the comparison",
        )
        result = screen.result
        assert result is not None
        cli = loose
        assert {k: v for k, v in result.items() if k != "window"} == cli
        assert cli["current"]["escalated"] == cli["proposed"]["escalated"] == 3
        assert [c["id"] for c in cli["changed"]] == [str(ids["b"])]

        sides = _cells(screen, "#wi-sides")
        assert ["reach a person", "3", "3", ""] in sides
        assert ["conversations", "3", "3", ""] in sides
        changed = _cells(screen, "#wi-changed")
        assert changed[0][:2] == [f"#{ids['b']}", "1"]
        assert "turn 2" in changed[0][2] and "turn 1" in changed[0][3]

        # Another file, typed: bereavement becomes urgent; the same figures as the CLI again.
        screen.result = None
        path = screen.query_one("#wi-path")
        path.focus()
        path.value = ""  # type: ignore[attr-defined]
        await pilot.press(*str(policies / "urgent-bereavement.toml"), "enter")
        await wait_until(pilot, lambda: screen.result is not None, what="the second comparison")
        cli = bereavement
        assert {k: v for k, v in screen.result.items() if k != "window"} == cli  # type: ignore[union-attr]
        changed = _cells(screen, "#wi-changed")
        assert [row[0] for row in changed] == [f"#{ids['d']}"]
        assert "empathy" in changed[0][2] and "urgent" in changed[0][3]
        summary = str(screen.query_one("#wi-summary").render())
        assert "0 more would reach a person, 0 fewer" in summary
        assert "at a higher level 1, lower 0" in summary
        if SHOTS:
            await pilot.pause()
            app.save_screenshot("console-whatif.svg", path=SHOTS)

        # Enter on a changed conversation opens its transcript.
        await pilot.press("f6", "enter")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, ConversationScreen)
                and app.screen.conversation_id == ids["d"]
            ),
            what="the transcript",
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen, what="back to what-if")

        # A file that is not a policy: one line, and the last comparison stays.
        path.value = str(policies / "pyproject.toml")  # type: ignore[attr-defined]
        path.focus()
        await pilot.press("enter")
        status = screen.query_one("#wi-status")
        await wait_until(pilot, lambda: "unknown" in str(status.render()), what="the refusal")
        assert screen.result is not None


def test_path_completion_offers_folders_and_policy_files(policies: Path) -> None:
    base = str(policies.parent)
    assert complete_path(base + "/pol") == base + "/policies/"
    assert complete_path(str(policies) + "/lo") == str(policies / "loose.toml")
    # Completion is about names; whether a file is a policy is said when it is picked.
    assert complete_path(str(policies) + "/py") == str(policies / "pyproject.toml")
    assert complete_path(str(policies) + "/zz") is None
    assert complete_path(str(policies / "nowhere") + "/x") is None
    assert [p.name for p in policy_files([policies, policies])] == [
        "in-force.toml",
        "loose.toml",
        "urgent-bereavement.toml",
    ]
