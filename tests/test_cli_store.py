"""The CLI: help for every command, and bad input as one line, a non-zero exit, no change."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from console import __version__
from console.cli import COMMANDS, build_parser


def tandem(
    *args: str, db: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if db is not None:
        full_env["TANDEM_DB"] = str(db)
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tandem: ") and words in lines[0], lines[0]


def test_help_describes_every_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helps = {a.dest: a.help for a in sub._choices_actions}
    registered = list(COMMANDS)
    assert set(sub.choices) == set(COMMANDS)
    for name in registered:
        assert helps.get(name), f"`tandem {name}` has no help line"
    out = tandem("--help")
    assert out.returncode == 0
    for name in registered:
        assert name in out.stdout


def test_version() -> None:
    assert tandem("--version").stdout.strip() == f"tandem {__version__}"


def test_db_init_status_check(db_path: Path) -> None:
    assert "schema" in tandem("db", "init", "--db", str(db_path)).stdout
    assert tandem("conv", "open", "Maya", db=db_path).stdout.strip() == "1"
    status = tandem("db", "status", "--json", db=db_path)
    assert '"bot": 1' in status.stdout
    check = tandem("db", "check", db=db_path)
    assert check.returncode == 0 and check.stdout.strip().endswith("ok")


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("conv", "post", "99", "hello"), "conversation 99 not found"),
        (("conv", "post", "1", "   "), "text is empty"),
        (("conv", "post", "1", "x" * 20_001), "too long"),
        (("conv", "hand-back", "1", "--by", "ana"), "cannot hand back conversation 1"),
        (("conv", "reply", "1", "hi", "--agent", "ana"), "does not own"),
        (("conv", "assign", "1", "--agent", "ana", "--by", "bob"), "only a supervisor"),
    ],
)
def test_bad_input_changes_nothing(db_path: Path, args: tuple[str, ...], words: str) -> None:
    tandem("conv", "open", "Maya", db=db_path)
    tandem("conv", "post", "1", "hello", db=db_path)
    before = (_count(db_path, "messages"), _count(db_path, "events"))
    _one_line_error(tandem(*args, db=db_path), words)
    assert (_count(db_path, "messages"), _count(db_path, "events")) == before


def test_claim_lost_says_who_has_it(db_path: Path) -> None:
    tandem("conv", "open", "Maya", db=db_path)
    assert tandem("conv", "claim", "1", "--agent", "ana", db=db_path).returncode == 0
    _one_line_error(tandem("conv", "claim", "1", "--agent", "bob", db=db_path), "taken by ana")


def test_not_a_sqlite_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\x00\x01 not sqlite at all" * 50)
    before = bad.read_bytes()
    _one_line_error(tandem("db", "status", "--db", str(bad)), "not a SQLite database")
    assert bad.read_bytes() == before


def test_locked_file(db_path: Path) -> None:
    tandem("db", "init", "--db", str(db_path))
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = tandem("conv", "open", "Maya", db=db_path, env={"TANDEM_BUSY_TIMEOUT_MS": "100"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _one_line_error(result, "locked")
    assert _count(db_path, "conversations") == 0


def test_missing_directory(tmp_path: Path) -> None:
    _one_line_error(
        tandem("db", "status", "--db", str(tmp_path / "nope" / "x.db")), "does not exist"
    )
