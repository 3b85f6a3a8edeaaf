"""The one action interface and the context every invocation receives."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec

if TYPE_CHECKING:
    from paraloom.protocols.events import Event
    from paraloom.runtime.approval import ApprovalGate
    from paraloom.runtime.budget import Budget
    from paraloom.runtime.selection import ModelSelector
    from paraloom.runtime.stop import StopSignal

__all__ = ["Action", "ActionContext", "EventSink", "discard_event"]

EventSink = Callable[["Event"], None]
"""Receives events; must not block (it is called on the event loop)."""


def discard_event(event: Event) -> None:
    """The sink used when nobody listens."""


@runtime_checkable
class Action(Protocol):
    """Anything paraloom can call: a tool, an agent, a workflow, an MCP or HTTP endpoint.

    ``invoke`` never raises for failures of the action itself: it returns an
    :class:`ActionResult` with an error status. Only cancellation propagates.
    Implementations keep no per-call mutable state on ``self`` (parallel calls of the
    same action must not interfere).
    """

    @property
    def spec(self) -> ActionSpec: ...

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult: ...


@dataclass(frozen=True)
class ActionContext:
    """What an invocation may use from its run: ids, the event sink, the shared budget,
    the run's model selector (router) and the actions it may call. ``stop`` is the
    run's graceful-stop request, if it can be stopped (see :mod:`paraloom.runtime.stop`).

    Contexts are immutable; :meth:`child` derives the context of a nested call.
    """

    run_id: str
    emit: EventSink = discard_event
    budget: Budget | None = None
    model_selector: ModelSelector | None = None
    subtask_id: str | None = None
    call_id: str | None = None
    depth: int = 0
    deadline: float | None = None
    capture_content: bool = False
    stop: StopSignal | None = None
    deltas: bool = False
    """Someone listens to ``LLMDelta`` events: LLM calls stream (see
    :mod:`paraloom.runtime.streaming`)."""
    extras: Mapping[str, Any] = field(default_factory=dict)
    approvals: ApprovalGate | None = None
    """The run's approval gate (calls needing a person's approval wait there)."""
    pace: Callable[[int], Awaitable[None]] | None = None
    """Set when a bounded event stream (``run.events()``) follows the run: the scheduler
    awaits ``pace(n)`` before a step emitting up to ``n`` events, so a full stream pauses
    the run and a CPU-bound run lets its consumer read (:mod:`paraloom.orchestrator.stream`)."""

    def child(self, call: ActionCall, emit: EventSink | None = None) -> ActionContext:
        """The context for ``call``, made from inside the invocation owning this context
        (``emit``: its event sink instead of this context's)."""
        # One per attempt: a copy of this context's fields (its ``__dict__``) with the
        # call's own, rather than ``__init__``, which sets each field of a frozen
        # dataclass through ``object.__setattr__`` (three times the cost); ``copy``
        # then stores into the copied keys (no ``{**fields, …}``: it grows a new dict).
        fields = self.__dict__
        values = fields.copy()
        if emit is not None:
            values["emit"] = emit
        if call.subtask_id:
            values["subtask_id"] = call.subtask_id
        values["call_id"] = call.call_id
        values["depth"] = fields["depth"] + 1
        if call.deadline is not None:
            values["deadline"] = _earliest(fields["deadline"], call.deadline)
        context = _new(type(self))
        _set(context, "__dict__", values)
        return context

    def time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - time.time()


_new = object.__new__
_set = object.__setattr__


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
