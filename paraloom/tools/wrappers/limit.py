"""An action with a bound on its invocations in flight, shared by everyone using it."""

from __future__ import annotations

from paraloom.protocols.actions import ActionCall, ActionResult
from paraloom.runtime.context import Action, ActionContext
from paraloom.runtime.limits import SharedLimit
from paraloom.tools.wrappers.base import WrapperAction

__all__ = ["ConcurrencyLimitAction", "with_concurrency_limit"]


class ConcurrencyLimitAction(WrapperAction):
    """At most ``max_concurrency`` invocations of the wrapped action at once, across every
    orchestrator, run and agent that calls this object (one
    :class:`~paraloom.runtime.limits.SharedLimit`).

    An ``Orchestrator``'s ``action_limits`` bound an action within that orchestrator's
    runs; this wrapper bounds it wherever the object is used. Inside a scheduler the
    wait for a slot happens within the attempt (it counts against ``timeout_s`` and
    holds the scheduler's global slot); put retries outside (``with_retry(
    with_concurrency_limit(a, 2))``) so that a backoff does not hold a slot.
    """

    def __init__(self, wrapped: Action, max_concurrency: int) -> None:
        super().__init__(wrapped)
        self.limit = SharedLimit(max_concurrency)

    @property
    def max_concurrency(self) -> int:
        return self.limit.total

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        async with self.limit:
            return await self.wrapped.invoke(call, context)


def with_concurrency_limit(action: Action, max_concurrency: int) -> ConcurrencyLimitAction:
    return ConcurrencyLimitAction(action, max_concurrency)
