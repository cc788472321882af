"""Layers import one way: only console/ui may reach textual; store never imports console."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADLESS = ["store", "console/triage", "console/assist", "console/bot", "console/channels"]


def _modules(folder: str) -> list[str]:
    base = ROOT / folder
    if not base.exists():
        return []
    names = []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("folder", HEADLESS)
def test_headless_packages_never_load_textual(folder: str) -> None:
    modules = _modules(folder)
    if not modules:
        pytest.skip(f"{folder} does not exist yet")
    # A fresh interpreter: what this test process already imported must not hide a leak.
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaks = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "console = sorted(m for m in sys.modules if m == 'console' or m.startswith('console.'))\n"
        "print(repr((leaks, console)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    leaks, console = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr
    assert leaks == [], f"{folder} pulls in textual"
    if folder == "store":
        assert console == [], f"store imports console: {console}"


def test_only_console_ui_imports_textual_in_source() -> None:
    offenders = []
    for path in list((ROOT / "console").rglob("*.py")) + list((ROOT / "store").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("console", "ui"):
            continue
        if "textual" in _imports(path):
            offenders.append(str(rel))
    assert offenders == []


def test_store_source_never_imports_console() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "store").rglob("*.py") if "console" in _imports(p)
    ]
    assert offenders == []
