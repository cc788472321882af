"""A real ``tandem serve`` for the console's Pilot tests over the remote backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from console.ui.app import TandemApp
from store import Store, accounts

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(db: Path, *extra: str, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    """``tandem serve`` on ``db`` (no LLM, no simulation) and its URL, once it listens."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env["TANDEM_API_TOKEN"] = "integration-secret-for-ui-tests"
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--db", str(db), "--no-replay"]
        + ["--log-interval", "0", "--listen", f"127.0.0.1:{port}", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "exited") from None
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("tandem serve did not listen within 30 s")


def stop_serve(proc: subprocess.Popen[str]) -> str:
    """Stop it cleanly; its stderr (a traceback there fails the test that started it)."""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return err or ""


class Consoles:
    """Makes consoles over the backend a test is parametrised with: ``local`` opens the file,
    ``remote`` connects to a real ``tandem serve`` on the same file (started on first use,
    after the test filled the store) with an account per name."""

    def __init__(self, kind: str, db_path: Path) -> None:
        self.kind = kind
        self.db_path = db_path
        self.proc: Any = None
        self.url = ""
        self.tokens: dict[str, str] = {}

    def backend(self, name: str, *, supervisor: bool = False) -> Any:
        from console.backend.remote import RemoteBackend

        if name not in self.tokens:
            with Store(self.db_path) as s:
                role = "supervisor" if supervisor else "agent"
                self.tokens[name] = accounts.add(s, name, role)
        if self.proc is None:
            self.proc, self.url = start_serve(self.db_path)
        return RemoteBackend(self.url, self.tokens[name])

    def app(self, name: str, *, supervisor: bool = False, **kw: Any) -> TandemApp:
        """A console for ``name`` (``interval`` 0.05 unless given)."""
        kw.setdefault("interval", 0.05)
        if self.kind == "local":
            return TandemApp(self.db_path, name, supervisor=supervisor, **kw)
        return TandemApp(self.backend(name, supervisor=supervisor), **kw)

    def close(self) -> None:
        if self.proc is not None:
            err = stop_serve(self.proc)
            assert "Traceback" not in err, err
