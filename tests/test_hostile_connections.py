"""Clients that go away half-way through a request, against a real `tandem serve`: nothing is
stored, everyone else is served, and the server's log holds no traceback.

By hand (a raw socket that sent a head and half its body, then closed or reset the
connection): each such request printed aiohttp's "Error handling request" with a traceback
ending in ConnectionResetError, on the channel API and the agent API alike.
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest
from fake_openai import fake_process
from serve_support import TOKEN, start_serve

from console.assist.service import DraftFinished, DraftStarted, DraftText
from console.backend.remote import RemoteBackend
from store import Store, accounts
from store import lifecycle as lc


def _half_body(port: int, path: str, headers: str, *, reset: bool) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\n"
            f'Content-Length: 100\r\n\r\n{{"name": "Ha'.encode()
        )
        if reset:  # RST instead of FIN, as a client that crashed or a middlebox would
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _get(port: int, path: str, headers: str = "") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_client_gone_half_way_through_its_body_leaves_no_trace(
    db_path: Path, reset: bool
) -> None:
    with Store(db_path) as store:
        token = accounts.add(store, "ana", "agent")
    running = start_serve(db_path)
    try:
        agent = f"Authorization: Bearer {token}\r\n"
        routes = [
            ("/web/conversations", ""),
            ("/v1/conversations", f"Authorization: Bearer {TOKEN}\r\n"),
            ("/agent/v1/presence", agent),
        ]
        for _ in range(3):
            for path, headers in routes:
                _half_body(running.port, path, headers, reset=reset)
        status, body = _get(running.port, "/agent/v1/me", agent)
        assert status == 200 and json.loads(body)["name"] == "ana"
        assert _get(running.port, "/healthz")[0] == 200
    finally:
        running.stop_cleanly()  # exit 0 and no traceback on its stderr
    with Store(db_path) as store:
        assert store.query("SELECT count(*) AS n FROM conversations")[0]["n"] == 0


async def test_a_draft_whose_server_dies_mid_stream_ends_incomplete_in_the_console(
    db_path: Path,
) -> None:
    # By hand: tandem serve killed (SIGKILL) while it streamed a draft to a remote console.
    # The stream just ended, without its "finished": the composer kept "writing…" forever and
    # the half draft looked like any other, ready to send.
    with Store(db_path) as store:
        token = accounts.add(store, "ana", "agent")
        cid = lc.open_conversation(store, "Maya")
        lc.add_customer_message(store, cid, "My card was declined at the shop, why?")
        lc.claim(store, cid, "ana")
    words = "Hi Maya, I am sorry your card was declined; let me look at the payment now."
    with fake_process(reply=words, chunk_delay=0.3) as (_, url):
        env = {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "k", "TANDEM_MODEL": "fake-1"}
        running = start_serve(db_path, env_extra=env)
        try:
            drafts = RemoteBackend(running.url, token).drafts(None, None)  # type: ignore[arg-type]
            events = []
            async for event in drafts.draft(cid):
                events.append(event)
                if sum(isinstance(e, DraftText) for e in events) == 2:
                    running.proc.kill()  # no goodbye: the socket just closes
        finally:
            running.proc.kill()
            running.proc.wait(10)
    assert isinstance(events[0], DraftStarted) and events[0].engine == "llm"
    done = events[-1]
    assert isinstance(done, DraftFinished), events
    assert done.incomplete == "the connection to the server ended mid-draft"
    assert done.draft_id == events[0].draft_id and done.engine == "llm"
    received = "".join(e.text for e in events if isinstance(e, DraftText))
    assert done.text == received and received and words.startswith(received)
    assert received != words
