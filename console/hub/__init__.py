"""The hub: bot, triage, escalation policy and SLA timers over a store.

``Hub`` (in :mod:`console.hub.core`) handles the change feed; :func:`serve_forever` (in
:mod:`console.hub.runner`) runs it as a process with signals, the simulator and a log line.
"""

from __future__ import annotations

from console.hub.core import CURSOR, Hub, HubStats, make_hub, percentile
from console.hub.runner import serve_forever

__all__ = ["CURSOR", "Hub", "HubStats", "make_hub", "percentile", "serve_forever"]
