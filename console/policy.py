"""The escalation policy: when does a person have to step in?

Everything the hub decides about escalation is here, in one pure function over a frozen set
of settings, so the rules can be read (and tested) without a database or a bot:

- the conversation's triage level reaches ``escalate_level`` (default ``empathy``);
- the customer asks for a person (triage reason ``human_request``, or the bot's structured
  ``handoff`` field);
- fraud or safety: at once, as ``urgent``;
- the bot has not known the answer ``max_fallbacks`` times (default 2);
- never on a prompt injection alone (``flag_only_reasons``): it is flagged for the agents and
  the bot keeps its normal behaviour.

After a person handed a conversation back, closed it, or a supervisor sent it back from the
queue, the reasons present at that moment are *settled*: they do not escalate it again; only
new evidence does (a reason not seen before, or the customer raising ``raised_again`` reasons
-- a person, their safety -- in the newest message).

Settings load from a TOML file (``tandem serve --policy FILE``) whose keys are the field
names of :class:`PolicySettings`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from console.names import first_name
from console.reasons import REASONS
from store.history import Closing, Reopening
from store.levels import LEVELS, NEEDS_HUMAN, level_rank, max_level

__all__ = [
    "LEVELS",
    "NEEDS_HUMAN",
    "Decision",
    "PolicySettings",
    "RoutingSettings",
    "Settled",
    "decide",
    "handoff_message",
    "level_rank",
    "load_settings",
    "max_level",
    "queue_ahead",
    "queue_key",
    "queue_order",
    "wait_estimate_minutes",
]

_Row = TypeVar("_Row", bound=Mapping[str, Any])

#: Response targets per level, in seconds: urgent in a minute, empathy in three, the rest ten.
DEFAULT_SLA_S: dict[str, float] = {"calm": 600.0, "watch": 600.0, "empathy": 180.0, "urgent": 60.0}


REOPEN_TO = ("last_agent", "queue", "bot")
ROUTING_MODES = ("off", "round_robin", "least_loaded")


def _positive(name: str, value: object, *, whole: bool = False, zero: bool = False) -> None:
    """Refuse anything but a finite number above 0 (or at least 0 with ``zero``)."""
    number = isinstance(value, int) if whole else isinstance(value, int | float)
    if isinstance(value, bool) or not number:
        ok = False
    else:
        x = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(x) and (x >= 0 if zero else x > 0)
    if not ok:
        sign = "non-negative" if zero else "positive"
        raise ValueError(f"{name} must be a {sign} {'whole number' if whole else 'number'}")


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """Automatic assignment of the queue to agents (``[routing]`` in the policy file).

    Off by default: agents pull work (``n``). When on, the hub gives each waiting
    conversation, in the queue order, to an agent who is online, under their capacity, speaks
    the conversation's language (agents without skills take any) and is not on an abuse
    pause. Abusive conversations go to whoever was shown the fewest abusive messages today.

    :param mode: ``off``, ``round_robin`` (the agent whose last assignment is oldest) or
        ``least_loaded`` (the fewest conversations held; ties as round robin)
    :param capacity: conversations an agent holds at most through assignment and take-next
    :param capacity_per_agent: per-agent exceptions, ``[routing.capacity_per_agent] ana = 5``
    :param abuse_pause_after: after every N abusive messages shown today an agent gets no new
        assignment for ``abuse_pause_minutes`` (0: never)
    :param abuse_pause_minutes: how long that pause lasts
    :param away_after_idle_minutes: a console with no key or mouse for this long turns away
        (back online at the next key)
    :param stale_after_s: an online console that sent no heartbeat for this long is gone
        (killed, cut off): it is neither assigned nor counted in the wait estimate
    :param interval_s: how often the hub looks for work to assign
    """

    mode: str = "off"
    capacity: int = 3
    capacity_per_agent: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    abuse_pause_after: int = 0
    abuse_pause_minutes: float = 15.0
    away_after_idle_minutes: float = 10.0
    stale_after_s: float = 90.0
    interval_s: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ROUTING_MODES:
            raise ValueError(
                f"routing.mode must be one of {', '.join(ROUTING_MODES)} (got {self.mode!r})"
            )
        _positive("routing.capacity", self.capacity, whole=True)
        _positive("routing.abuse_pause_after", self.abuse_pause_after, whole=True, zero=True)
        for name in (
            "abuse_pause_minutes",
            "away_after_idle_minutes",
            "stale_after_s",
            "interval_s",
        ):
            _positive(f"routing.{name}", getattr(self, name))
        if not isinstance(self.capacity_per_agent, Mapping):
            raise ValueError("routing.capacity_per_agent must be a table of name = capacity")
        for name, value in self.capacity_per_agent.items():
            _positive(f"routing.capacity_per_agent.{name}", value, whole=True, zero=True)
        object.__setattr__(
            self, "capacity_per_agent", MappingProxyType(dict(self.capacity_per_agent))
        )

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def capacity_of(self, agent: str) -> int:
        """How many conversations ``agent`` may hold through assignment and take-next."""
        return self.capacity_per_agent.get(agent, self.capacity)


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The knobs of the escalation policy and the hub's timers.

    :param escalate_level: a conversation at or above this level goes to the queue
    :param max_fallbacks: escalate when the bot would not know for the N-th time
    :param urgent_reasons: these reasons escalate at once and mark the conversation urgent
    :param raised_again: after a hand-back, these escalate again when the customer's newest
        message raises them again (asking for a person again; a safety concern); others
        already dealt with do not
    :param human_request_reasons: reasons that mean "the customer asked for a person"
    :param flag_only_reasons: shown to agents but never a reason to escalate on their own (a
        prompt injection is flagged; the bot keeps its normal policy)
    :param soft_reasons: tone alone; next to a flag-only reason in the same message (an
        injection's imperative reads as negative) they do not escalate either
    :param minutes_per_customer: average handling time, for the wait estimate we tell customers
    :param idle_resolve_s: a bot conversation nobody wrote in for this long is resolved
    :param sla_tick_s: how often waiting conversations are re-triaged for ``long_wait``
    :param online_window_s: an agent seen within this many seconds counts as online
    :param sla_s: seconds a customer may wait for a person's response, per level (an urgent
        fraud report is not a "watch" question); ``[policy.sla_s]`` in the policy file
    :param reopen_to: where a closed conversation goes when the customer writes again, if a
        person had it when it closed: ``last_agent`` (that person if online, else the queue
        with a note), ``queue``, or ``bot`` (the assistant, which reads the transcript)
    :param routing: automatic assignment, ``[routing]`` in the policy file (off by default)
    """

    escalate_level: str = "empathy"
    max_fallbacks: int = 2
    urgent_reasons: tuple[str, ...] = ("fraud", "safety")
    raised_again: tuple[str, ...] = ("human_request", "safety")
    human_request_reasons: tuple[str, ...] = ("human_request",)
    flag_only_reasons: tuple[str, ...] = ("prompt_injection",)
    soft_reasons: tuple[str, ...] = ("negative_sentiment", "sentiment_drop")
    minutes_per_customer: float = 4.0
    idle_resolve_s: float = 600.0
    sla_tick_s: float = 1.0
    online_window_s: float = 900.0
    sla_s: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(DEFAULT_SLA_S))
    reopen_to: str = "last_agent"
    routing: RoutingSettings = field(default_factory=RoutingSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.routing, RoutingSettings):
            raise ValueError("routing must be a [routing] table")
        if self.reopen_to not in REOPEN_TO:
            raise ValueError(
                f"reopen_to must be one of {', '.join(REOPEN_TO)} (got {self.reopen_to!r})"
            )
        if self.escalate_level not in LEVELS:
            raise ValueError(
                f"escalate_level must be one of {', '.join(LEVELS)} (got {self.escalate_level!r})"
            )
        if self.max_fallbacks < 1:
            raise ValueError("max_fallbacks must be at least 1")
        for name in ("minutes_per_customer", "idle_resolve_s", "sla_tick_s", "online_window_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0 or math.isnan(value):
                raise ValueError(f"{name} must be a positive number")
        for name in (
            "urgent_reasons",
            "raised_again",
            "human_request_reasons",
            "flag_only_reasons",
            "soft_reasons",
        ):
            unknown = [r for r in getattr(self, name) if r not in REASONS]
            if unknown:
                raise ValueError(
                    f"{name}: unknown reason {unknown[0]!r} (reasons: {', '.join(REASONS)})"
                )
        if not isinstance(self.sla_s, Mapping):
            raise ValueError("sla_s must be a table of level = seconds")
        for level, seconds in self.sla_s.items():
            if level not in LEVELS:
                raise ValueError(f"sla_s: unknown level {level!r} (levels: {', '.join(LEVELS)})")
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not 0 < seconds < math.inf
            ):
                raise ValueError(f"sla_s.{level} must be a positive number of seconds")
        # Levels the file leaves out keep their default target.
        merged = {**DEFAULT_SLA_S, **{k: float(v) for k, v in self.sla_s.items()}}
        object.__setattr__(self, "sla_s", MappingProxyType(merged))

    def sla_for(self, level: str | None) -> float:
        """Seconds allowed for a response at ``level`` (an unknown level gets calm's)."""
        return self.sla_s.get(level or "calm", self.sla_s["calm"])

    def with_overrides(self, **overrides: Any) -> PolicySettings:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


EXAMPLES = Path(__file__).with_name("policies")
"""Example policy files shipped with Tandem (the what-if screen lists them; copy one to start)."""


def load_settings(path: str | Path, base: PolicySettings | None = None) -> PolicySettings:
    """Read a TOML policy file (keys: :class:`PolicySettings` fields, optionally under ``[policy]``;
    automatic assignment under ``[routing]``, keys: :class:`RoutingSettings` fields).

    :raises ValueError: unreadable file, unknown key or a bad value, said in one line
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    routing = data.pop("routing", None)
    if isinstance(data.get("policy"), dict):
        if data["policy"].get("routing") is not None:
            if routing is not None:
                raise ValueError(f"{path}: [routing] is given twice (also under [policy])")
            routing = data["policy"]["routing"]
        data = {k: v for k, v in data["policy"].items() if k != "routing"}
    known = {f.name: f for f in fields(PolicySettings) if f.name != "routing"}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"{path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(known)})"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in (
            "urgent_reasons",
            "raised_again",
            "human_request_reasons",
            "flag_only_reasons",
            "soft_reasons",
        ):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path}: {key} must be a list of strings")
            value = tuple(value)
        if key == "sla_s" and not isinstance(value, dict):
            raise ValueError(f"{path}: sla_s must be a table, e.g. [policy.sla_s] urgent = 60")
        values[key] = value
    if routing is not None:
        values["routing"] = _routing(path, routing, (base or PolicySettings()).routing)
    try:
        return (base or PolicySettings()).with_overrides(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def _routing(path: str | Path, data: object, base: RoutingSettings) -> RoutingSettings:
    if not isinstance(data, dict):
        raise ValueError(f'{path}: routing must be a table, e.g. [routing] mode = "least_loaded"')
    known = [f.name for f in fields(RoutingSettings)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"{path}: unknown routing setting(s) {', '.join(unknown)} (known: {', '.join(known)})"
        )
    if "capacity_per_agent" in data and not isinstance(data["capacity_per_agent"], dict):
        raise ValueError(
            f"{path}: routing.capacity_per_agent must be a table, e.g. "
            "[routing.capacity_per_agent] ana = 5"
        )
    try:
        return replace(base, **data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided about one customer message.

    :param escalate: hand the conversation to the queue
    :param reasons: why (triage vocabulary), the ones that triggered it first
    :param level: the level to mark the conversation with (``urgent`` for fraud/safety)
    :param rule: which rule fired, for logs and tests
    """

    escalate: bool
    reasons: tuple[str, ...] = ()
    level: str = "calm"
    rule: str = "bot"

    @property
    def urgent(self) -> bool:
        return self.level == "urgent"


@dataclass(frozen=True, slots=True)
class Settled:
    """What a person already dealt with before handing the conversation back to the bot."""

    reasons: frozenset[str] = frozenset()
    level: str = "calm"


def decide(
    settings: PolicySettings,
    *,
    level: str,
    reasons: Iterable[str],
    message_reasons: Iterable[str] = (),
    fallbacks: int = 0,
    handoff: bool = False,
    handoff_reason: str | None = None,
    settled: Settled | None = None,
) -> Decision:
    """Decide whether a conversation with the bot must go to a person now.

    :param level: the conversation's triage level after the latest message
    :param reasons: the conversation's triage reasons
    :param message_reasons: reasons found in the latest message alone
    :param fallbacks: how many times the bot did not know (including a pending answer)
    :param handoff: the bot asked to hand off (its structured field)
    :param handoff_reason: the bot's reason, if it gave one from the triage vocabulary
    :param settled: what a person already handled; those reasons alone never re-escalate
    """
    reasons = tuple(dict.fromkeys(reasons))
    latest = frozenset(message_reasons)
    settled = settled or Settled()
    # Evidence a person has not seen yet. Some reasons raised again in the newest message
    # count as new: the customer asks for a person again, or is in danger again.
    always_new = latest & set(settings.raised_again)
    fresh = tuple(r for r in reasons if r not in settled.reasons or r in always_new)
    fresh_set = frozenset(fresh)

    urgent = tuple(r for r in settings.urgent_reasons if r in fresh_set)
    if urgent:
        return Decision(True, _ordered(urgent, fresh), "urgent", "urgent")

    asked = tuple(r for r in settings.human_request_reasons if r in fresh_set)
    if asked:
        return Decision(True, _ordered(asked, fresh), max_level(level, "empathy"), "human_request")
    if handoff:
        why = handoff_reason or "human_request"
        return Decision(True, _ordered((why,), fresh), max_level(level, "empathy"), "handoff")

    rose = level_rank(level) > level_rank(settled.level)
    counted = tuple(r for r in fresh if r not in settings.flag_only_reasons)
    if latest & set(settings.flag_only_reasons):
        counted = tuple(r for r in counted if r not in settings.soft_reasons)
    if level_rank(level) >= level_rank(settings.escalate_level) and counted:
        # Name the reasons behind the level; after a hand-back only the new ones count.
        return Decision(True, _ordered(counted, fresh), level, "level")
    if (
        level_rank(level) >= level_rank(settings.escalate_level)
        and rose
        and not fresh
        and not settled.reasons
    ):
        # A level without any reason (a score alone) still reaches a person.
        return Decision(True, ("negative_sentiment",), level, "level")

    if fallbacks >= settings.max_fallbacks:
        return Decision(
            True, _ordered(("bot_fallback",), fresh), max_level(level, "watch"), "fallbacks"
        )
    return Decision(False, (), level, "bot")


def _ordered(first: Iterable[str], rest: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *rest]))


# --- the queue order -------------------------------------------------------------------------


def queue_key(row: Mapping[str, Any]) -> tuple[int, float, int]:
    """Where a waiting conversation stands in the queue: the smaller the key, the sooner.

    The rule, one for every place that orders the queue (take-next, the supervisor's list,
    the position a customer is told, and assignment): **most in need first** (``urgent``,
    ``empathy``, ``watch``, ``calm``), **then the longest waiting** (``waiting_since``,
    oldest first), then the conversation id so that equal keys still give one order.

    A long wait does not jump levels here: the SLA tick re-triages waiting conversations and
    ``long_wait`` raises their level (``watch`` after 2 minutes, more after 5), so a forgotten
    customer climbs the queue through the level, visibly and with a reason on the badge.

    The store hands over rows (``store.views.waiting_queue``) and this orders them, rather
    than the policy handing the store an ``ORDER BY``: the same key then orders rows already
    in memory (the wall's, the supervisor's) without a second spelling in SQL, and a store
    backend never has to implement the policy. The queue is read whole; it is small.

    :param row: any mapping with ``id``, ``level`` and ``waiting_since`` (a store row, a
        tile); a missing ``waiting_since`` counts as waiting the longest, a missing level as calm
    """
    since = row.get("waiting_since")
    return (-level_rank(row.get("level")), float(since or 0.0), int(row["id"]))


def queue_order(rows: Iterable[_Row]) -> list[_Row]:
    """The waiting conversations among ``rows``, in the order people should take them.

    Rows in any other state (with the bot, claimed by an agent, resolved) are left out: they
    are not in the queue.
    """
    return sorted((r for r in rows if r["state"] == "waiting"), key=queue_key)


def queue_ahead(rows: Iterable[Mapping[str, Any]], entry: Mapping[str, Any]) -> int:
    """How many waiting conversations among ``rows`` come before ``entry`` (0: it is next).

    ``entry`` need not be in ``rows`` yet: the hub asks before the conversation joins the
    queue, with the level and the time it joins at.
    """
    mine = queue_key(entry)
    # A count, not a sort: the hub asks on every escalation, with the whole queue in hand.
    return sum(
        1
        for r in rows
        if r["state"] == "waiting" and r["id"] != entry["id"] and queue_key(r) < mine
    )


def wait_estimate_minutes(
    settings: PolicySettings,
    queue_ahead: int,
    agents_online: int,
    measured_minutes: float | None = None,
) -> int | None:
    """Rough minutes until a person picks up, or ``None`` when nobody is online.

    :param queue_ahead: conversations waiting before this one
    :param agents_online: agents seen recently
    :param measured_minutes: recent average time a person spent per conversation, when known;
        otherwise ``settings.minutes_per_customer``
    """
    if agents_online <= 0:
        return None
    per = (
        measured_minutes
        if measured_minutes and measured_minutes > 0
        else settings.minutes_per_customer
    )
    return max(1, math.ceil((queue_ahead + 1) * per / agents_online))


def handoff_message(
    decision: Decision, *, queue_ahead: int, wait_minutes: int | None, fallback: bool = False
) -> str:
    """What the customer is told when the bot passes them to a person: honest about the wait."""
    parts: list[str] = []
    if fallback:
        parts.append("I'm sorry, I can't answer that one reliably myself.")
    reasons = set(decision.reasons)
    if "safety" in reasons:
        parts.append("If you are in danger right now, please call your local emergency number.")
    if "fraud" in reasons:
        parts.append(
            "If you think someone else can use your card or account, freeze the card in the app "
            "now and don't share any codes with anyone who contacts you."
        )
    if decision.urgent:
        parts.append("I've marked this as urgent and passed it to a person on our team.")
    else:
        parts.append("I'm passing you to a person on our team.")
    parts.append(_wait_sentence(queue_ahead, wait_minutes))
    return " ".join(parts)


def _wait_sentence(queue_ahead: int, wait_minutes: int | None) -> str:
    if wait_minutes is None:
        return (
            "Nobody from the team is online at this moment, so it may take a while; your "
            "conversation is kept in the queue and you'll get a reply here."
        )
    if queue_ahead == 0:
        place = "You're next in the queue"
    elif queue_ahead == 1:
        place = "There is 1 person ahead of you"
    else:
        place = f"There are {queue_ahead} people ahead of you"
    unit = "minute" if wait_minutes == 1 else "minutes"
    return f"{place}; the wait is about {wait_minutes} {unit}. You can keep writing here meanwhile."


def reopen_message(
    state: str, *, agent: str | None, queue_ahead: int = 0, wait_minutes: int | None = None
) -> str | None:
    """What the customer is told when their message reopens a closed conversation.

    :param state: where it went (``human``: back to ``agent``; ``waiting``: to the queue)
    :return: ``None`` when it went back to the assistant (its answer is the reply)
    """
    if state == "human":
        name = first_name(agent)
        who = f"{name}, who helped you before," if name else "The person who helped you before"
        return f"Welcome back. {who} has your conversation again and will reply here."
    if state == "waiting":
        return (
            "Welcome back. I've passed your conversation to a person on our team, with "
            "everything said so far. " + _wait_sentence(queue_ahead, wait_minutes)
        )
    return None


def reopen_route(
    settings: PolicySettings, closing: Closing | None, *, agent_online: bool
) -> Reopening:
    """Where a closed conversation goes when its customer writes again.

    Never to an assistant starting from nothing: a conversation a person closed goes back to
    that person while they are online, else to the queue with a note saying who had it (the
    transcript comes along either way). One the customer left while waiting goes back to the
    queue; one the assistant had goes back to the assistant.

    :param closing: how it was last closed (``None``: no closing on record)
    :param agent_online: whether ``closing.agent`` is online now
    """
    if closing is None or closing.from_state == "bot":
        return Reopening("bot")
    if closing.from_state == "waiting":
        return Reopening(
            "waiting",
            note="Reopened by the customer, who had left the queue before anyone answered.",
        )
    who = closing.agent or "a person"
    if settings.reopen_to == "bot":
        return Reopening("bot")
    if settings.reopen_to == "last_agent" and closing.agent and agent_online:
        return Reopening(
            "human",
            agent=closing.agent,
            note=f"Reopened by the customer: back to {who}, who closed it.",
        )
    if settings.reopen_to == "last_agent":
        why = f"{who} had it and is not online"
    else:
        why = f"{who} had it"
    return Reopening("waiting", note=f"Reopened by the customer after it was closed; {why}.")
