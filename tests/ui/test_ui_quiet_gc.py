"""The console's collector policy: no full collection while typing, the usual one afterwards."""

from __future__ import annotations

import gc
import time

from console.ui.quiet_gc import MAX_INTERVAL, MIN_INTERVAL, QUIET_SECONDS, QuietCollector


def test_full_collections_wait_for_quiet_input_and_the_policy_is_undone() -> None:
    before = gc.get_threshold()
    qc = QuietCollector()
    qc.start()
    try:
        assert gc.get_threshold()[2] > 10**8
        t = time.monotonic()
        qc.last_full = t - MIN_INTERVAL - 1
        qc.last_input = t  # the agent is typing
        assert not qc.tick()
        qc.last_input = t - QUIET_SECONDS - 0.1
        assert qc.tick() and qc.collections == 1
        assert not qc.tick()  # not again so soon
        qc.last_full = time.monotonic() - MAX_INTERVAL - 1
        qc.touched()
        assert qc.tick()  # typing for minutes on end still gets a collection
    finally:
        qc.stop()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
