"""A throwaway PostgreSQL server for the tests: initdb and pg_ctl in a temporary directory.

The server listens on a unix socket only (no TCP port is opened) in its own directory, on a
port number no other server of this machine uses for a socket there. It runs without fsync:
the tests check the store's logic, not the disk. Each test gets its own database, copied
from a migrated template (a copy is much faster than migrating anew).

Debian's ``postgresql`` package provides the binaries (.ci/run installs it); ``initdb``
refuses to run as root, so as root the server runs as the ``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

TEMPLATE = "tandem_template"


def pg_bin() -> Path:
    """The directory of initdb/pg_ctl: ``TANDEM_PG_BIN`` or Debian's newest version."""
    if os.environ.get("TANDEM_PG_BIN"):
        return Path(os.environ["TANDEM_PG_BIN"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL's initdb was not found: install Debian's postgresql package"
        " (.ci/run does) or set TANDEM_PG_BIN"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A running server; :meth:`new_database` hands out fresh, migrated databases."""

    def __init__(self, root: Path, port: int, user: str | None) -> None:
        self.root = root
        self.port = port
        self.user = user
        self._count = itertools.count(1)
        self._free: list[str] = []

    def url(self, dbname: str) -> str:
        """The libpq URL of ``dbname`` on this server."""
        return f"postgresql://tandem@/{dbname}?host={self.root}&port={self.port}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """A connection to the maintenance database (CREATE/DROP DATABASE)."""
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def new_database(self) -> str:
        """A database migrated to the current schema with no rows; its URL.

        One a finished test gave back (:meth:`release`) is emptied and handed out again:
        TRUNCATE of a few tables costs a fraction of copying the template (8 MB of catalog
        files per database, most of a second under load, and a data directory of gigabytes).
        """
        while self._free:
            url = self._free.pop()
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("SET lock_timeout = 2000")
                    tables = [
                        str(r[0])
                        for r in conn.execute(
                            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                            " AND tablename != 'tandem_migrations'"
                        )
                    ]
                    conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")  # type: ignore[call-overload]
                return url
            except psycopg.Error:
                continue  # held by a straggler: leave it, take another
        name = f"t{os.getpid()}_{next(self._count)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")  # type: ignore[call-overload]
        return self.url(name)

    def release(self, url: str) -> None:
        """``url`` (from :meth:`new_database`) is free for another test."""
        self._free.append(url)

    def empty_database(self) -> str:
        """A new database with no schema at all (migrations' own tests); its URL."""
        name = f"e{os.getpid()}_{next(self._count)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, user=self.user, capture_output=True, text=True, check=False, timeout=120
        )

    def stop(self) -> None:
        """Stop the server at once and remove its files."""
        from store.pg import close_pools

        close_pools()
        self._run(
            str(pg_bin() / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


def start_server() -> PgServer:
    """initdb, start, and migrate the template database (about 2-4 s)."""
    bindir = pg_bin()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="tandem-pg-"))
    os.chmod(root, 0o755)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PgServer(root, _free_port(), user)
    init = server._run(
        str(bindir / "initdb"),
        "-D",
        str(root / "data"),
        "-U",
        "tandem",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    options = (
        f"-k {root} -p {server.port} -c listen_addresses='' -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    )
    started = server._run(
        str(bindir / "pg_ctl"),
        "-D",
        str(root / "data"),
        "-o",
        options,
        "-l",
        str(root / "server.log"),
        "-w",
        "-t",
        "60",
        "start",
    )
    if started.returncode != 0:
        log = (
            (root / "server.log").read_text(errors="replace")[-2000:]
            if (root / "server.log").exists()
            else ""
        )
        raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()} {log}")
    from store import Store
    from store.pg import close_pools

    with server.admin() as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    Store(server.url(TEMPLATE)).close()
    close_pools()  # a template database must have no open connection when it is copied
    return server
