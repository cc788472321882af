"""``tandem login URL``: keep an account's token for ``tandem console --server URL``.

The token (printed once by ``tandem agent add`` on the server host) is read from standard
input, never from the command line (where ``ps`` and the shell's history would show it),
checked against the server, and written to ``$XDG_CONFIG_HOME/tandem/tokens.json`` (default
``~/.config``), readable by its owner only (0600, in a 0700 directory). ``TANDEM_TOKEN``
overrides the file.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from console.errors import UsageError

TOKEN_VARIABLE = "TANDEM_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "login",
        help="keep an account's token for `tandem console --server URL` (read from stdin)",
        description="Check an account token against a Tandem server and keep it for "
        "`tandem console --server URL`, in $XDG_CONFIG_HOME/tandem/tokens.json (mode 0600). "
        "The token is read from standard input (typed without echo, or piped), never from "
        "the command line.",
        epilog="Example: tandem login https://tandem.example.com:8765  (paste the token printed "
        "by `tandem agent add NAME` on the server)",
    )
    parser.add_argument("url", metavar="URL", help="the server, e.g. https://host:8765")
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="a CA certificate to trust for https (a self-signed server certificate)",
    )
    parser.add_argument(
        "--forget", action="store_true", help="remove the kept token for URL instead"
    )
    parser.set_defaults(func=run)


def token_file() -> Path:
    """Where tokens are kept: ``$XDG_CONFIG_HOME/tandem/tokens.json``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tandem" / "tokens.json"


def server_key(url: str) -> str:
    """The server's URL as tokens are filed under it (no trailing slash)."""
    return url.strip().rstrip("/")


def _read_tokens(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the kept tokens ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a token file")
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def _write_tokens(path: Path, tokens: dict[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Created 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(tokens, out, indent=1, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def stored_token(url: str) -> str | None:
    """The token for ``url``: ``$TANDEM_TOKEN``, else the one ``tandem login`` kept."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if token:
        return token
    path = token_file()
    if path.exists() and path.stat().st_mode & 0o077:
        raise UsageError(f"{path} is readable by others: chmod 600 it, or log in again")
    return _read_tokens(path).get(server_key(url))


def _read_token() -> str:
    if sys.stdin.isatty():
        token = getpass.getpass("account token (from `tandem agent add`, not echoed): ")
    else:
        token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise UsageError("no token given (paste it, or pipe it in)")
    return token


def run(args: argparse.Namespace) -> int:
    key = server_key(args.url)
    path = token_file()
    if args.forget:
        tokens = _read_tokens(path)
        if tokens.pop(key, None) is None:
            print(f"no token kept for {key}")
            return 0
        _write_tokens(path, tokens)
        print(f"forgot the token for {key}")
        return 0
    token = _read_token()
    from console.backend.remote import RemoteBackend

    backend = RemoteBackend(key, token, ca_file=args.ca_file)  # refuses a wrong token
    backend.close()
    tokens = _read_tokens(path)
    tokens[key] = token
    _write_tokens(path, tokens)
    role = "supervisor" if backend.supervisor else "agent"
    print(f"logged in to {key} as {backend.agent} ({role}); token kept in {path}")
    ca = f" --ca-file {args.ca_file}" if args.ca_file else ""
    print(f"next: tandem console --server {key}{ca}")
    return 0
