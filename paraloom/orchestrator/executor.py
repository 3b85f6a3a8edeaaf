"""Where an action invocation runs. The scheduler hands every attempt to an Executor;
the default runs it in-process on the event loop. Distributed executors (Ray) implement
the same one-method interface; budget and events stay with the orchestrator."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from paraloom.protocols.actions import ActionCall, ActionResult
from paraloom.runtime.context import Action, ActionContext

__all__ = ["Executor", "InProcessExecutor"]


@runtime_checkable
class Executor(Protocol):
    async def invoke(
        self, action: Action, call: ActionCall, context: ActionContext
    ) -> ActionResult:
        """Run one attempt and return its result (never raise except on cancellation)."""
        ...


class InProcessExecutor:
    async def invoke(
        self, action: Action, call: ActionCall, context: ActionContext
    ) -> ActionResult:
        return await action.invoke(call, context)
