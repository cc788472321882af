"""``python -m console.bench.first_frame DB``: the real ``tandem console`` start, headless.

Used by ``tandem bench console`` to time start -> first frame in a new process: it prints
``FRAME`` once the wall has drawn its first frame with tiles, then exits.
"""

from __future__ import annotations

import sys


def main(db: str) -> int:
    """Run ``tandem console`` on ``db`` headless at 160x48 until its first frame."""
    from console.cli import main as tandem
    from console.ui.first_frame_probe import install

    install()
    return tandem(["console", "--db", db, "--agent", "bench-start"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
