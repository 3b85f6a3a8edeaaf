"""Make a call's span the *current* OpenTelemetry span while the action runs, so spans
created inside it (your own ``tracer.start_as_current_span``, an httpx or database
instrumentation) nest under the right ``execute_tool``/``invoke_agent`` span, also when
subtasks run in parallel anyio tasks (each task has its own context).

The span tree of paraloom itself never depends on this (the listener parents by id);
this wrapper only helps spans made by code paraloom calls.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import context as otel_context
from opentelemetry import trace

from paraloom.protocols.actions import ActionCall, ActionResult
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.wrappers.base import WrapperAction
from paraloom.tracing.listener import TracingListener

__all__ = ["SpanContextAction", "with_span_context"]


class SpanContextAction(WrapperAction):
    """Runs the wrapped action with its call's span (from ``listener``) as current span."""

    def __init__(self, wrapped: Action, listener: TracingListener) -> None:
        super().__init__(wrapped)
        self.listener = listener

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        span = self.listener.span_for(call.call_id)
        if span is None:
            return await self.wrapped.invoke(call, context)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await self.wrapped.invoke(call, context)
        finally:
            otel_context.detach(token)


def with_span_context(actions: Iterable[Action], listener: TracingListener) -> list[Action]:
    """``actions``, each wrapped in a :class:`SpanContextAction`."""
    return [SpanContextAction(a, listener) for a in actions]
