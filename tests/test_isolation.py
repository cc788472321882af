"""The test fixtures keep a developer's own settings out of the tests (tests/conftest.py).

A pytest run is started the way a developer would start it: from a checkout holding a
``tandem.toml`` with an LLM endpoint, with ``TANDEM_*`` and ``OPENAI_*`` variables set and a
home directory of their own. A probe under our conftest sees none of it; the same probe's
twin without the conftest sees all of it, so the planted settings are not inert.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROBE = """
import os
from pathlib import Path

from console.config import load_config
from store import resolve_path


def test_{name}(tmp_path):
    leaked = sorted(k for k in os.environ if k.startswith(("TANDEM_", "OPENAI_")))
    config = load_config()
    if {isolated}:
        assert leaked == [], leaked
        assert Path.cwd() == tmp_path and not Path("tandem.toml").exists()
        assert not config.enabled, config.describe()
        assert resolve_path(None).resolve() == tmp_path / "tandem.db"
        assert Path.home().is_relative_to(tmp_path)
    else:
        # Without the fixtures the developer's settings are all there.
        assert "TANDEM_FOO" in leaked and "OPENAI_API_KEY" in leaked
        assert config.enabled and config.model == "from-the-developers-env"
        assert config.base_url == "http://127.0.0.1:9/v1"  # from ./tandem.toml
        assert resolve_path(None) == Path(os.environ["TANDEM_DB"])
"""


def test_a_developers_config_and_environment_never_reach_a_test(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"  # where the developer starts pytest
    checkout.mkdir()
    (checkout / "tandem.toml").write_text(
        '[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "from-the-file"\n'
    )
    isolated, bare = tmp_path / "suite" / "isolated", tmp_path / "suite" / "bare"
    isolated.mkdir(parents=True)
    bare.mkdir()
    shutil.copy(TESTS / "conftest.py", isolated)
    shutil.copy(TESTS / "fake_openai.py", isolated)
    (isolated / "test_isolated.py").write_text(PROBE.format(name="isolated", isolated=True))
    (bare / "test_bare.py").write_text(PROBE.format(name="bare", isolated=False))
    env = {
        **os.environ,
        "HOME": str(checkout),
        "XDG_CONFIG_HOME": str(checkout / ".config"),
        "TANDEM_FOO": "bar",
        "TANDEM_DB": str(checkout / "mine.db"),
        "TANDEM_MODEL": "from-the-developers-env",
        "OPENAI_API_KEY": "sk-developer",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path / "suite")],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    passed = [line for line in run.stdout.splitlines() if line.startswith("PASSED ")]
    assert len(passed) == 2, run.stdout[-3000:]
    assert any(line.endswith("test_isolated.py::test_isolated") for line in passed)
    assert any(line.endswith("test_bare.py::test_bare") for line in passed)
