"""``tandem console`` / ``demo`` options: the policy's SLA targets, ``--sla``, ``--alerts``, ``--notify``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from console.commands.console import add_console_options, notify_protocol, policy_settings
from console.errors import UsageError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_console_options(parser)
    return parser.parse_args(list(argv))


def test_the_policy_file_sets_the_targets_and_sla_overrides_every_level(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy.sla_s]\nurgent = 30\nwatch = 300\n")
    assert dict(policy_settings(_args()).sla_s) == {
        "calm": 600.0,
        "watch": 600.0,
        "empathy": 180.0,
        "urgent": 60.0,
    }
    assert dict(policy_settings(_args("--policy", str(policy))).sla_s) == {
        "calm": 600.0,
        "watch": 300.0,
        "empathy": 180.0,
        "urgent": 30.0,
    }
    both = policy_settings(_args("--policy", str(policy), "--sla", "90"))
    assert set(both.sla_s.values()) == {90.0}


@pytest.mark.parametrize("argv", [("--sla", "0"), ("--sla", "nan"), ("--policy", "/no/such.toml")])
def test_bad_targets_are_one_line(argv: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        policy_settings(_args(*argv))


def test_alerts_and_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _args().alerts == "all"
    assert _args("--alerts", "urgent").alerts == "urgent"
    assert notify_protocol(_args("--notify", "osc777")) == "osc777"
    for name in ("TMUX", "STY", "TERM_PROGRAM", "KITTY_WINDOW_ID", "WT_SESSION", "VTE_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("VTE_VERSION", "7600")
    assert notify_protocol(_args()) == "osc777"
