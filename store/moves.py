"""The legal moves of a conversation (DESIGN.md section 4), declared once.

:mod:`store.lifecycle` refuses a move whose conversation is not in one of its ``sources``
and records ``sources -> target`` in the feed; :mod:`store.check` replays the feed against
the same table. Change a move here and both follow.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("bot", "waiting", "human", "resolved")
OPENED = "bot"
"""The state a new conversation starts in (its ``opened`` event)."""


@dataclass(frozen=True, slots=True)
class Move:
    """One transition: the ``events.kind`` it is logged as, where it may start, where it ends.

    ``target`` is where it ends; a move with a choice of ends (a reopened conversation goes
    where the policy routes it) lists them all in ``targets``, ``target`` first.
    """

    kind: str
    sources: frozenset[str]
    target: str
    who: str
    targets: frozenset[str]

    def allowed(self, state: str | None) -> bool:
        return state in self.sources


def _move(kind: str, sources: tuple[str, ...], target: str | tuple[str, ...], who: str) -> Move:
    ends = (target,) if isinstance(target, str) else target
    return Move(kind, frozenset(sources), ends[0], who, frozenset(ends))


MOVES: dict[str, Move] = {
    m.kind: m
    for m in (
        _move("escalated", ("bot",), "waiting", "hub policy, customer, bot, agent, supervisor"),
        _move("claimed", ("bot", "waiting"), "human", "an agent"),
        _move("assigned", ("waiting",), "human", "a supervisor, or the router (routing on)"),
        _move("released", ("waiting",), "bot", "a supervisor"),
        _move("handed_back", ("human",), "bot", "the owner or a supervisor"),
        _move("transferred", ("human",), "human", "a supervisor"),
        _move("resolved", ("bot", "waiting", "human"), "resolved", "hub, owner or supervisor"),
        _move("abandoned", ("waiting",), "resolved", "the hub (the customer left the queue)"),
        _move(
            "reopened",
            ("resolved",),
            ("bot", "waiting", "human"),
            "the customer writes again (to the bot, the queue or the last agent: the policy)",
        ),
    )
}

ESCALATE = MOVES["escalated"]
CLAIM = MOVES["claimed"]
ASSIGN = MOVES["assigned"]
RELEASE = MOVES["released"]
HAND_BACK = MOVES["handed_back"]
TRANSFER = MOVES["transferred"]
RESOLVE = MOVES["resolved"]
ABANDON = MOVES["abandoned"]
REOPEN = MOVES["reopened"]

POSTS_IN: dict[str, str] = {"bot": "bot", "agent": "human"}
"""The state a conversation must be in for each role to post to the customer (invariant 3):
the bot only while it owns the conversation, an agent only while a person does (and only the
owner, which the lifecycle and the checker also verify)."""
