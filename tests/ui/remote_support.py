"""A real ``tandem serve`` for the console's Pilot tests over the remote backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serve_support import Serve, start_serve

from console.ui.app import TandemApp
from store import Store, accounts


class Consoles:
    """Makes consoles over the backend a test is parametrised with: ``local`` opens the file,
    ``remote`` connects to a real ``tandem serve`` on the same file (started on first use,
    after the test filled the store) with an account per name."""

    def __init__(self, kind: str, db_path: Path) -> None:
        self.kind = kind
        self.db_path = db_path
        self.server: Serve | None = None
        self.url = ""
        self.tokens: dict[str, str] = {}

    def backend(self, name: str, *, supervisor: bool = False) -> Any:
        from console.backend.remote import RemoteBackend

        if name not in self.tokens:
            with Store(self.db_path) as s:
                role = "supervisor" if supervisor else "agent"
                self.tokens[name] = accounts.add(s, name, role)
        if self.server is None:
            self.server = start_serve(self.db_path)
            self.url = self.server.url
        return RemoteBackend(self.url, self.tokens[name])

    def app(self, name: str, *, supervisor: bool = False, **kw: Any) -> TandemApp:
        """A console for ``name`` (``interval`` 0.05 unless given)."""
        kw.setdefault("interval", 0.05)
        if self.kind == "local":
            return TandemApp(self.db_path, name, supervisor=supervisor, **kw)
        return TandemApp(self.backend(name, supervisor=supervisor), **kw)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop_cleanly()
