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
from serve_support import TOKEN, start_serve

from store import Store, accounts


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
