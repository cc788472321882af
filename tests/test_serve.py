"""`tandem serve` as a real process on a real file: flow, clean shutdown, SIGKILL and restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from serve_support import Serve, serve, start_serve
from waiting import wait_until

from store import Store
from store import lifecycle as lc
from store.check import check

ROOT = Path(__file__).resolve().parents[1]


def _serve(db: Path, *args: str, env_extra: dict[str, str] | None = None) -> Serve:
    """``tandem serve`` without its API and without replay data (started, not waited for)."""
    return serve(db, "--no-replay", "--no-api", *args, env_extra=env_extra)


def _states(db: Path) -> dict[str, int]:
    with Store(db) as store:
        return {
            s: n for s, n in store.query("SELECT state, count(*) FROM conversations GROUP BY state")
        }


def _messages(db: Path) -> int:
    if not db.exists():
        return 0
    with Store(db) as store:
        row = store.one("SELECT count(*) FROM messages")
        return int(row[0]) if row else 0


def _unanswered(store: Store) -> list[int]:
    """Bot conversations whose newest message is the customer's: nobody answered it."""
    rows = store.query(
        "SELECT c.id FROM conversations c WHERE c.state = 'bot' AND"
        " (SELECT role FROM messages m WHERE m.conversation_id = c.id AND m.role != 'note'"
        "  ORDER BY m.id DESC LIMIT 1) = 'customer'"
    )
    return [r[0] for r in rows]


def _answered_twice(store: Store) -> list[int]:
    """Conversations with two bot messages and no customer message between them."""
    bad = []
    for (cid,) in store.query("SELECT DISTINCT conversation_id FROM messages WHERE role = 'bot'"):
        previous = None
        for (role,) in store.query(
            "SELECT role FROM messages WHERE conversation_id = ? AND role IN ('customer', 'bot') ORDER BY id",
            (cid,),
        ):
            if role == "bot" and previous == "bot":
                bad.append(cid)
                break
            previous = role
    dup = store.query(
        "SELECT reply_to FROM messages WHERE role = 'bot' AND reply_to IS NOT NULL"
        " GROUP BY reply_to HAVING count(*) > 1"
    )
    return bad + [r[0] for r in dup]


def test_serve_simulates_traffic_and_stops_cleanly_on_sigterm(db_path: Path) -> None:
    proc = _serve(
        db_path, "--simulate", "40", "--speed", "25", "--seed", "4", "--log-interval", "2"
    )
    try:
        # Run until every state has shown up and a periodic line was logged (a loaded machine
        # is slower, so no fixed time).
        def flowing() -> bool:
            proc.running()
            states = _states(db_path)
            # Two waiting, so one leaving the queue as we stop still leaves one to see.
            return (
                min(states.get(k, 0) for k in ("bot", "resolved")) > 0
                and states.get("waiting", 0) >= 2
                and any(ln.startswith("hub: ") for ln in list(proc.lines))
            )

        wait_until(flowing, timeout=60, interval=0.2, what="every state and a periodic line")
    finally:
        err = proc.stop_cleanly()
    assert "tandem serve: stopped after" in err, err
    assert any(ln.startswith("hub: ") and "customer messages" in ln for ln in err.splitlines()), err
    states = _states(db_path)
    assert (
        states.get("bot", 0) > 0 and states.get("waiting", 0) > 0 and states.get("resolved", 0) > 0
    ), (states, err)
    with Store(db_path) as store:
        assert check(store) == []
        for (data,) in store.query("SELECT data FROM events WHERE kind = 'escalated'"):
            assert json.loads(data)["reasons"]  # every escalation says why
        # One cursor per shard of the conversations (console.hub.shards), all saved on stopping.
        cursors = store.query("SELECT event_id FROM cursors WHERE name LIKE 'hub/%'")
        assert len(cursors) == 64 and min(c[0] for c in cursors) > 0


def test_sigkill_then_restart_leaves_nothing_unanswered_or_answered_twice(db_path: Path) -> None:
    # Killed three times at different moments, busy each time (40 customers typing fast): once
    # so many more messages are stored, not after a fixed time (a loaded machine starts slower).
    for seed, more in ((9, 30), (10, 12), (11, 20)):
        before = _messages(db_path)
        proc = _serve(
            db_path, "--simulate", "40", "--speed", "40", "--seed", str(seed), "--log-interval", "0"
        )
        try:
            wait_until(
                lambda: proc.running() and _messages(db_path) >= before + more,  # noqa: B023
                timeout=60,
                interval=0.1,
                what=f"{more} more messages",
            )
        finally:
            proc.kill()
        assert proc.proc.returncode == -signal.SIGKILL
    # Customers keep writing through the channel while the hub is down.
    with Store(db_path) as store:
        bot_convs = [
            r[0] for r in store.query("SELECT id FROM conversations WHERE state = 'bot' LIMIT 20")
        ]
        fresh = [lc.open_conversation(store, f"late {i}", channel="api") for i in range(10)]
        for i, cid in enumerate(bot_convs + fresh):
            lc.add_customer_message(
                store, cid, "How does pay in 3 work?", idempotency_key=f"late-{i}"
            )
        assert _unanswered(store)  # the restart has work to do
    again = _serve(db_path, "--log-interval", "0")
    try:
        with Store(db_path) as store:
            wait_until(
                lambda: not _unanswered(store), timeout=60, what="the restart answering them all"
            )
    finally:
        # Stopping lets whatever it still had in hand finish: a duplicate would be stored now.
        again.stop_cleanly()
    with Store(db_path) as store:
        assert _unanswered(store) == []
        assert _answered_twice(store) == []
        assert check(store) == []
        for cid in fresh:
            roles = [
                r[0]
                for r in store.query(
                    "SELECT role FROM messages WHERE conversation_id = ? ORDER BY id", (cid,)
                )
            ]
            assert roles == ["customer", "bot"]


def _http(
    method: str, url: str, body: dict | None = None, token: str | None = None
) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_runs_the_channel_api_in_the_same_loop(db_path: Path) -> None:
    env_token = "integration-secret"
    proc = start_serve(db_path, token=env_token)
    base = proc.url

    def healthy() -> bool:
        proc.running()
        try:
            return _http("GET", f"{base}/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(healthy, timeout=30, interval=0.1, what="the API coming up")
        status, conv = _http(
            "POST", f"{base}/v1/conversations", {"customer": {"name": "Maya"}}, env_token
        )
        assert status == 201
        cid, token = conv["id"], conv["customer_token"]
        status, _ = _http(
            "POST",
            f"{base}/v1/conversations/{cid}/messages",
            {"text": "How does pay in 3 work?", "idempotency_key": "m1"},
            token,
        )
        assert status == 201

        def roles() -> list[str]:
            got = _http("GET", f"{base}/v1/conversations/{cid}/messages", token=token)[1]
            return [m["role"] for m in got["messages"]]

        wait_until(lambda: "bot" in roles(), interval=0.1, what="the bot's answer")
        assert roles() == ["customer", "bot"]
    finally:
        err = proc.stop_cleanly()
    assert f"channel API {base} (TANDEM_API_TOKEN set)" in err


def test_serve_refuses_bad_settings_in_one_line(tmp_path: Path, capsys) -> None:
    from console.cli import main

    bad = tmp_path / "policy.toml"
    bad.write_text("max_fallback = 3\n")
    db = str(tmp_path / "t.db")
    for argv, words in (
        (["serve", "--db", db, "--policy", str(bad)], "unknown setting(s) max_fallback"),
        (["serve", "--db", db, "--max-fallbacks", "0"], "max_fallbacks must be at least 1"),
        (["serve", "--db", db, "--listen", "localhost:http"], "--listen wants HOST:PORT"),
        (["serve", "--db", db, "--speed", "0"], "--speed must be positive"),
        (["serve", "--db", db, "--simulate", "-2"], "--simulate must be 0 or more"),
        (
            ["serve", "--db", db, "--simulate", "2", "--personas", "routine,pirate"],
            "unknown persona(s) pirate",
        ),
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("tandem: ") and words in err and err.count("\n") == 1
    assert not Path(db).exists()  # nothing was started


def test_serve_uses_the_configured_llm_unless_told_embedded(db_path: Path, fake_openai) -> None:
    fake_openai.tool_args = {
        "reply": "Pay-in-3 splits a purchase into three payments.",
        "handoff": False,
        "known": True,
        "kb_ids": ["KB-001"],
    }
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "k", "TANDEM_MODEL": "fake-1"}
    for extra, engine in (((), "llm"), (("--embedded",), "embedded")):
        with Store(db_path) as store:
            cid = lc.open_conversation(store, "Maya")
            lc.add_customer_message(store, cid, "How does pay in 3 work?")
        proc = _serve(db_path, "--log-interval", "0", *extra, env_extra=env)

        def answer(cid: int = cid, proc: Serve = proc) -> tuple[str] | None:
            proc.running()
            with Store(db_path) as store:
                return store.one(
                    "SELECT meta FROM messages WHERE conversation_id = ? AND role = 'bot'", (cid,)
                )

        try:
            # From a cold start: the new process imports the openai package at its first LLM
            # call, 13.5-15.4 s wall alone on 2 cores at load 15 (DEADLINE is 15 s).
            meta = json.loads(
                wait_until(answer, timeout=60, interval=0.05, what="the bot's answer")[0]
            )
        finally:
            err = proc.stop_cleanly()
        assert meta["engine"] == engine, err
        assert ("bot llm fake-1" in err) == (engine == "llm")


def test_a_second_hub_on_the_same_database_is_refused(db_path: Path) -> None:
    first = _serve(db_path, "--log-interval", "0")
    try:
        lock = Path(f"{db_path}.hub.lock")

        def locked() -> bool:
            first.running()
            return lock.exists() and lock.read_text() != ""

        wait_until(locked, interval=0.05, what="the first hub's lock")
        second = _serve(db_path, "--duration", "1", "--log-interval", "0")
        err = second.wait(timeout=20)
        assert second.proc.returncode == 1
        assert f"another tandem serve (pid {first.pid}) is already running on {db_path}" in err
    finally:
        first.stop_cleanly()
