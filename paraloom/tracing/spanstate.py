"""The listener's bookkeeping: open spans, runs in progress, and small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from paraloom.protocols.actions import ActionKind
from paraloom.protocols.events import RoundStarted, SubtaskStarted

__all__ = [
    "OK",
    "ActionStatic",
    "Open",
    "RunState",
    "error_type_of",
    "ns",
    "paraloom_version",
    "usd",
]

OK = Status(StatusCode.OK)
"""One shared OK status (immutable) instead of one per span."""


def ns(ts: float) -> int:
    return int(ts * 1_000_000_000)


def usd(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


@dataclass(slots=True)
class Open:
    span: Span
    run_id: str
    node_id: str
    started: float
    provider: str = ""
    model: str = ""
    kind: str = ""
    ctx: Context | None = None
    """The context with this span current (made once, for the spans under it)."""


@dataclass(slots=True, frozen=True)
class ActionStatic:
    """What the spans of one action's calls under one parent call share in a run."""

    kind: ActionKind
    kind_value: str
    name: str
    attrs: dict[str, AttributeValue]
    """Every attribute but the call's own (ids, attempt, subtask, graph node)."""
    tool: bool


@dataclass(slots=True)
class RunState:
    span: Span
    root_call: str | None
    node_id: str
    subtasks: dict[str, SubtaskStarted] = field(default_factory=dict)
    with_action: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    keys: dict[str, None] = field(default_factory=dict)
    rounds_done: set[str] = field(default_factory=set)
    session: str = ""
    shared: bool = False
    """The run lives in the span of the workflow action that started it (no twin row)."""
    twins: set[str] = field(default_factory=set)
    """Actions that several subtasks of one plan call (their spans name the subtask)."""
    ctx: Context | None = None
    """The context with the run span current (made once, for the spans under it)."""
    actions: dict[tuple[str, str | None], ActionStatic] = field(default_factory=dict)
    """The shared attributes of an action's spans by (action, parent call id), made
    once (see ``CallSpans._action_static``)."""
    pending_rounds: dict[str, RoundStarted] = field(default_factory=dict)
    """Planner rounds not drawn yet: a round is drawn once it calls a model, fails or is
    replayed (a static planner's instant rounds become ``paraloom.plan`` run events)."""


def error_type_of(error: str) -> str:
    if error == "cancelled":
        return "cancelled"
    head, sep, _ = error.partition(":")
    return head.strip() if sep and head.strip().isidentifier() else "error"


@cache
def paraloom_version() -> str:
    """The installed version (read from the package metadata once per process)."""
    try:
        from importlib.metadata import version

        return version("paraloom")
    except Exception:
        return ""
