"""Hostile input and hostile files at the command line: one line on stderr, never a traceback.

Real processes on real SQLite files: bytes that are not UTF-8 in argv, JSONL lines built to
break a parser, a damaged page, a read-only file and directory, a symlink to a served file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.errors import UsageError
from console.hub.runner import one_hub_per_database
from store import Store
from store import lifecycle as lc

ROOT = Path(__file__).resolve().parents[1]


def tandem(
    *args: str | bytes, db: Path | None = None, stdin: bytes = b"", prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TANDEM_", "OPENAI_"))}
    if db is not None:
        env["TANDEM_DB"] = str(db)
    result = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "console.cli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# --- text that is not Unicode ------------------------------------------------------------


def test_argv_bytes_that_are_not_utf8_are_refused_in_one_line(db_path: Path) -> None:
    assert tandem("conv", "open", "Maya", db=db_path).stdout.strip() == "1"
    one_line_error(
        tandem("conv", "post", "1", b"\xff", db=db_path), "text is not valid UTF-8 (byte 0xff"
    )
    one_line_error(tandem("conv", "open", b"Ma\xffya", db=db_path), "customer name")
    claimed = tandem("conv", "claim", "1", "--agent", b"\xfe", db=db_path)  # argparse's usage too
    assert claimed.returncode != 0 and "Traceback" not in claimed.stderr
    assert "agent name" in claimed.stderr.splitlines()[-1]
    one_line_error(tandem("kb", "search", b"card \xff", db=db_path), "not valid UTF-8")
    with Store(db_path) as store:
        assert store.one("SELECT count(*) FROM messages")[0] == 0


def test_a_database_path_that_is_not_utf8_works(tmp_path: Path) -> None:
    # A file name is bytes on POSIX; the store must open it, not fail to encode it.
    db = os.fsencode(tmp_path) + b"/caf\xe9.db"
    assert tandem("conv", "open", "Maya", "--db", db).stdout.strip() == "1"
    listed = tandem("conv", "list", "--db", db)
    assert listed.returncode == 0 and "Maya" in listed.stdout
    assert os.path.exists(db)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b'{"id": ' + b"9" * 5000 + b', "text": "hi"}', "line 1: not usable JSON"),
        (b'{"id": 1, "text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b'{"id": "\\ud800", "text": "hi"}', '"id" is not valid Unicode'),
        (b'{"id": 1, "text": "hi \\udfff"}', '"text" is not valid Unicode'),
        (b'{"id": 1, "messages": [{"text": "\\udc80"}]}', "messages[0].text is not valid"),
    ],
)
def test_triage_reports_hostile_lines_in_one_line_each(line: bytes, words: str) -> None:
    result = tandem("triage", stdin=line + b'\n{"id": 2, "text": "fine"}\n')
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert words in result.stderr.splitlines()[0]
    assert '"id": 2' in result.stdout  # the next line is still scored


def test_conv_list_keeps_emoji_joined_with_zero_width_joiners(db_path: Path) -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    with Store(db_path) as store:
        cid = lc.open_conversation(store, f"Ana {family}")
        lc.add_customer_message(store, cid, f"trip for the {family} \x1b[31m")
    listed = tandem("conv", "list", db=db_path)
    assert family in listed.stdout and "\ufffd" not in listed.stdout
    assert "\x1b" not in listed.stdout and "␛[31m" in listed.stdout
    shown = tandem("conv", "show", str(cid), db=db_path)
    assert family in shown.stdout and "\x1b" not in shown.stdout


# --- a damaged file ------------------------------------------------------------------------


def _damage(db: Path, table: str) -> None:
    """Overwrite ``table``'s root page with garbage, as a bad disk sector would."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
    with open(db, "r+b") as fh:
        fh.seek((root[0] - 1) * page)
        fh.write(b"\xa5" * page)


def _messages(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_db_check_reports_a_damaged_page_in_one_line_and_writers_stop(db_path: Path) -> None:
    with Store(db_path) as store:
        cid = lc.open_conversation(store, "Maya")
        lc.add_customer_message(store, cid, "hi")
    _damage(db_path, "drafts")  # a table `conv post` never reads
    # Nobody has met the damage yet: a post that does not touch it still goes through.
    assert tandem("conv", "post", str(cid), "first", db=db_path).returncode == 0
    check = tandem("db", "check", db=db_path)
    assert check.returncode == 1 and "Traceback" not in check.stderr + check.stdout
    lines = check.stdout.strip().splitlines()
    assert len(lines) == 2 and "damaged" in lines[0] and "restore a backup" in lines[0], lines
    assert lines[1].endswith("1 problem(s)")
    # From now on every writer refuses the file, whichever pages it would touch.
    before = _messages(db_path)
    one_line_error(
        tandem("conv", "post", str(cid), "second", db=db_path), "was found damaged", "restore"
    )
    one_line_error(tandem("conv", "open", "Ben", db=db_path), "was found damaged")
    assert _messages(db_path) == before
    # Reading what can still be read works (salvage before restoring).
    shown = tandem("conv", "show", str(cid), db=db_path)
    assert shown.returncode == 0 and "first" in shown.stdout


def test_a_writer_meeting_a_damaged_page_says_so_and_marks_the_file(db_path: Path) -> None:
    with Store(db_path) as store:
        cid = lc.open_conversation(store, "Maya")
        for n in range(300):  # several pages, so the root is an interior page
            lc.add_customer_message(store, cid, f"message {n} " + "x" * 100)
    _damage(db_path, "messages")
    one_line_error(tandem("conv", "post", str(cid), "hello", db=db_path), "is damaged")
    one_line_error(tandem("conv", "open", "Ben", db=db_path), "was found damaged")
    check = tandem("db", "check", db=db_path)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert "damaged" in check.stdout or "integrity_check" in check.stdout


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_bytes(b"not sqlite at all " * 500)
    one_line_error(tandem("db", "check", "--db", str(bogus)), "is not a SQLite database")
    assert not (tmp_path / "notes.db.damaged").exists()


# --- a read-only file ---------------------------------------------------------------------


@contextlib.contextmanager
def _readonly_copy(source: Path, *, directory_too: bool) -> Iterator[tuple[Path, list[str]]]:
    """``source`` copied to a fresh directory, made read-only; plus how to run as a user
    the permissions bind (root ignores them, so a root test drops to nobody)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot bind")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    top = Path(tempfile.mkdtemp(prefix="tandem-ro-"))
    try:
        top.chmod(0o755)
        db = top / "tandem.db"
        with contextlib.closing(sqlite3.connect(source)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(source, db)
        db.chmod(0o444)
        if directory_too:
            top.chmod(0o555)
        else:
            top.chmod(0o777)  # the reader may create SQLite's -shm beside the file
        yield db, prefix
    finally:
        top.chmod(stat.S_IRWXU)
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("directory_too", [False, True], ids=["file", "directory"])
def test_reading_commands_work_on_a_read_only_store(db_path: Path, directory_too: bool) -> None:
    assert tandem("kb", "search", "card", db=db_path).returncode == 0  # loads the articles
    with Store(db_path) as store:
        cid = lc.open_conversation(store, "Maya")
        lc.add_customer_message(store, cid, "my card was declined")
    with _readonly_copy(db_path, directory_too=directory_too) as (db, prefix):
        for args, expect in (
            (("db", "status"), "bot 1"),
            (("db", "check"), ": ok"),
            (("conv", "show", str(cid)), "my card was declined"),
            (("conv", "list"), "Maya"),
            (("kb", "search", "card", "declined"), "KB-"),
            (("kb", "show", "KB-007"), "KB-007"),
        ):
            result = tandem(*args, "--db", str(db), prefix=prefix)
            assert result.returncode == 0 and expect in result.stdout, (args, result.stderr)
        one_line_error(
            tandem("conv", "post", str(cid), "hi", "--db", str(db), prefix=prefix), str(db)
        )


# --- the hub's lock ------------------------------------------------------------------------


def test_the_hub_lock_follows_symlinks_to_the_same_file(tmp_path: Path) -> None:
    real = tmp_path / "data" / "tandem.db"
    real.parent.mkdir()
    Store(real).close()
    (tmp_path / "link.db").symlink_to(real)
    (tmp_path / "linkdir").symlink_to(real.parent)
    first = one_hub_per_database(real)
    try:
        for other in (
            tmp_path / "link.db",
            tmp_path / "linkdir" / "tandem.db",
            tmp_path / "data" / ".." / "data" / "tandem.db",
        ):
            with pytest.raises(UsageError, match="another tandem serve"):
                one_hub_per_database(other)
    finally:
        first.close()
    again = one_hub_per_database(tmp_path / "link.db")  # free again once the first is gone
    again.close()
