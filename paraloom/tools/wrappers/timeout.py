"""An action that gives up after a number of seconds (status ``timeout``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from paraloom.protocols.actions import ActionCall, ActionResult
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.wrappers.base import WrapperAction

__all__ = ["TimeoutAction", "invoke_with_timeout", "with_timeout"]


async def invoke_with_timeout(
    invoke: Callable[[], Awaitable[ActionResult]], call: ActionCall, seconds: float | None
) -> ActionResult:
    """Run ``invoke()`` (one invocation of ``call``); past ``seconds`` it is cancelled
    and a ``timeout`` result is returned instead."""
    if seconds is None:
        return await invoke()
    started = time.time()
    with anyio.move_on_after(seconds) as scope:
        return await invoke()
    assert scope.cancelled_caught
    return ActionResult.failure(
        call,
        "timeout",
        "TimeoutError",
        f"{call.action!r} timed out after {seconds:g}s",
        started_at=started,
    )


class TimeoutAction(WrapperAction):
    def __init__(self, wrapped: Action, seconds: float) -> None:
        super().__init__(wrapped)
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        self.seconds = seconds

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        return await invoke_with_timeout(
            lambda: self.wrapped.invoke(call, context), call, self.seconds
        )


def with_timeout(action: Action, seconds: float) -> TimeoutAction:
    return TimeoutAction(action, seconds)
