"""The hub: bot, triage, escalation policy and SLA timers over a store.

``Hub`` (in :mod:`console.hub.core`) puts together one module per job: following the feed
(``feed``), the work on one conversation (``conversation``, ``memory``), applying the policy
(``escalation``), what customers are told (``notices``), the SLA timers (``sla``) and the
counters (``stats``). :func:`serve_forever` (in :mod:`console.hub.runner`) runs it as a
process with signals, the simulator and a log line.
"""

from __future__ import annotations

from console.hub.core import CURSOR, Hub, HubStats, make_hub
from console.hub.runner import serve_forever

__all__ = ["CURSOR", "Hub", "HubStats", "make_hub", "serve_forever"]
