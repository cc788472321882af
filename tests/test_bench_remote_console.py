"""`tandem bench console --server`: a real `tandem serve`, remote consoles in another process."""

from __future__ import annotations

import re

from console.cli import main


def test_bench_console_server_delivers_every_event_once(capsys) -> None:
    code = main(
        ["bench", "console", "--server", "--consoles", "3", "--seconds", "1", "--rate", "20"]
        + ["--conversations", "5"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    delivered = re.search(
        r"3 remote consoles: (\d+) events delivered \((\d+) feed events each\), gaps 0,"
        r" repeats 0, not yet delivered when the run stopped 0",
        out,
    )
    assert delivered, out
    assert int(delivered[2]) > 0 and int(delivered[1]) == 3 * int(delivered[2])
    assert re.search(r"commit -> event at a remote console: p50 [\d.]+ ms, p99 [\d.]+ ms", out)
    assert re.search(r"with 3 consoles \(backlogs included\): -?[\d.]+ ms per console", out)
