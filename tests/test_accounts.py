"""Accounts (DESIGN section 12): tokens stored as hashes, names checked, roles the store enforces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from store import Forbidden, InvalidInput, NotFound, Store, accounts
from store import lifecycle as lc
from store.check import check
from store.feed import read_events
from store.queries import get_conversation


def _tandem(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _waiting(store: Store, name: str = "Maya") -> int:
    cid = lc.open_conversation(store, name)
    lc.add_customer_message(store, cid, "I need a person")
    lc.escalate(store, cid, reasons=["human_request"])
    return cid


def test_cli_prints_the_token_once_and_stores_only_its_hash(db_path: Path) -> None:
    made = _tandem(db_path, "agent", "add", "ana", "--role", "agent")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("tdm_") and len(token) > 40
    assert "shown once" in made.stderr and token not in made.stderr
    listed = _tandem(db_path, "agent", "list")
    assert listed.returncode == 0 and "ana" in listed.stdout and "active" in listed.stdout
    assert token not in listed.stdout
    assert token.encode() not in db_path.read_bytes()
    with Store(db_path) as store:
        assert accounts.authenticate(store, token) is not None
        again = _tandem(db_path, "agent", "add", "ana")
        assert again.returncode == 1 and "exists" in again.stderr


def test_rotate_and_disable_take_effect_at_once(store: Store) -> None:
    old = accounts.add(store, "ana", "agent")
    new = accounts.rotate(store, "ana")
    assert accounts.authenticate(store, old) is None
    account = accounts.authenticate(store, new)
    assert account is not None and account.name == "ana" and account.role == "agent"
    accounts.set_disabled(store, "ana", True)
    assert accounts.authenticate(store, new) is None
    assert [a.disabled for a in accounts.list_accounts(store)] == [True]
    accounts.set_disabled(store, "ana", False)
    assert accounts.authenticate(store, new) is not None
    assert accounts.authenticate(store, "tdm_" + "x" * 43) is None
    assert accounts.authenticate(store, "not-even-ours") is None
    with pytest.raises(NotFound, match="no account named bob"):
        accounts.rotate(store, "bob")


@pytest.mark.parametrize(
    "name", ["Robert'); DROP TABLE agents;--", "", "a" * 33, "-rf", "ana lopez", "ána", "bot"]
)
def test_names_are_refused_before_any_write(store: Store, name: str) -> None:
    cid = lc.open_conversation(store, "Maya")
    with pytest.raises(InvalidInput):
        accounts.add(store, name, "agent")
    with pytest.raises(InvalidInput):
        lc.claim(store, cid, name)
    assert store.query("SELECT name FROM agents") == []
    assert get_conversation(store, cid)["state"] == "bot"


def test_cli_refuses_a_bad_agent_name_in_one_line(db_path: Path) -> None:
    with Store(db_path) as store:
        cid = lc.open_conversation(store, "Maya")
    out = _tandem(db_path, "conv", "claim", str(cid), "--agent", "Robert'); DROP")
    assert out.returncode == 2 and "is not allowed" in out.stderr and "Traceback" not in out.stderr
    with Store(db_path) as store:
        assert store.query("SELECT name FROM agents") == []


def test_an_agent_account_cannot_make_supervisor_moves(store: Store) -> None:
    accounts.add(store, "ana", "agent")
    accounts.add(store, "sam", "supervisor")
    waiting = _waiting(store)
    held = _waiting(store, "Ben")
    lc.claim(store, held, "sam")
    before = len(read_events(store))
    with pytest.raises(Forbidden, match="only a supervisor can assign"):
        lc.assign(store, waiting, "ana", by="ana")
    with pytest.raises(Forbidden, match="only a supervisor can release"):
        lc.release(store, waiting, by="ana")
    with pytest.raises(Forbidden, match="only a supervisor can transfer"):
        lc.transfer(store, held, "ana", by="ana")
    assert len(read_events(store)) == before
    assert get_conversation(store, waiting)["state"] == "waiting"
    assert get_conversation(store, held)["owner"] == "sam"
    lc.assign(store, waiting, "ana", by="sam")
    assert get_conversation(store, waiting)["owner"] == "ana"
    assert check(store) == []


def test_an_account_role_is_not_changed_by_a_console_flag(store: Store) -> None:
    accounts.add(store, "ana", "agent")
    accounts.add(store, "sam", "supervisor")
    with pytest.raises(Forbidden, match="only `tandem agent role` changes it"):
        lc.register_agent(store, "ana", role="supervisor")  # console --supervisor
    with pytest.raises(Forbidden):
        lc.register_agent(store, "sam", role="agent")  # console without --supervisor
    lc.register_agent(store, "sam", role="supervisor")  # the heartbeat: same role is fine
    accounts.set_role(store, "ana", "supervisor")
    roles = {r[0]: r[1] for r in store.query("SELECT name, role FROM agents")}
    assert roles == {"ana": "supervisor", "sam": "supervisor"}


def test_a_disabled_account_moves_nothing(store: Store) -> None:
    accounts.add(store, "ana", "agent")
    accounts.add(store, "sam", "supervisor")
    mine = _waiting(store)
    lc.claim(store, mine, "ana")
    other = _waiting(store, "Ben")
    accounts.set_disabled(store, "ana", True)
    accounts.set_disabled(store, "sam", True)
    before = len(read_events(store))
    with pytest.raises(Forbidden, match="disabled"):
        lc.claim(store, other, "ana")
    with pytest.raises(Forbidden, match="disabled"):
        lc.agent_reply(store, mine, "ana", "still here?")
    with pytest.raises(Forbidden, match="disabled"):
        lc.hand_back(store, mine, by="ana")
    with pytest.raises(Forbidden):
        lc.assign(store, other, "ana", by="sam")
    with pytest.raises(Forbidden):
        lc.resolve(store, other, by="sam")
    assert len(read_events(store)) == before


def test_conv_show_says_who_made_each_move(db_path: Path) -> None:
    with Store(db_path) as store:
        accounts.add(store, "sam", "supervisor")
        cid = _waiting(store)
        lc.assign(store, cid, "ana", by="sam")
        lc.hand_back(store, cid, by="ana")
    out = _tandem(db_path, "conv", "show", str(cid))
    assert out.returncode == 0, out.stderr
    moves = out.stdout.split("moves:\n", 1)[1].splitlines()
    assert [line.split()[1:4] for line in moves] == [
        ["opened", "by", "customer"],
        ["escalated", "by", "hub"],
        ["assigned", "by", "sam"],
        ["handed_back", "by", "ana"],
    ]
