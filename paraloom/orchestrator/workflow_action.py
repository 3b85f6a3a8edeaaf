"""A whole workflow as one action of another workflow or agent (nesting)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import JsonValue

from paraloom.orchestrator.orchestrator import Orchestrator
from paraloom.protocols.actions import (
    ActionCall,
    ActionKind,
    ActionResult,
    ActionSpec,
    ActionStatus,
    ErrorInfo,
)
from paraloom.runtime.context import ActionContext

__all__ = ["WorkflowAction"]

_TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "What the workflow should do."}},
    "required": ["task"],
}


class WorkflowAction:
    """Runs an :class:`Orchestrator` as an action (kind ``workflow``).

    The nested run shares the caller's budget, model selector and event sink; its
    ``RunStarted`` names the calling call as parent. Its concurrency limits are its own
    orchestrator's, so the caller's slot, held while the nested run works, never starves
    it (do not nest an orchestrator in itself: it would wait for its own slots). With
    the default input schema the task is the ``task`` argument; with a custom schema the
    whole arguments object is.
    """

    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        name: str | None = None,
        description: str = "",
        input_schema: dict[str, Any] | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self._whole_arguments = input_schema is not None
        self._spec = ActionSpec(
            name=name or orchestrator.name,
            description=description,
            kind=ActionKind.WORKFLOW,
            input_schema=input_schema or _TASK_SCHEMA,
        )

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        started = time.time()
        task: JsonValue = (
            dict(call.arguments) if self._whole_arguments else call.arguments.get("task")
        )
        result = await self.orchestrator.run(task, parent=context.child(call))
        # A 'warning' run answered (its warnings reach the caller's run through the shared
        # event sink and budget); so did a 'partial' one (its failures are in its own events).
        answered = result.ok or result.status in ("warning", "partial")
        return ActionResult(
            call_id=call.call_id,
            action=call.action,
            status=ActionStatus.OK if answered else _status(result.status),
            output=result.output,
            error=None
            if answered
            else ErrorInfo(
                type=f"Workflow{result.status.title()}", message=result.error or result.status
            ),
            usage=result.usage,
            cost_usd=result.cost_usd,
            started_at=started,
            ended_at=time.time(),
            attempt=call.attempt,
        )


def _status(run_status: str) -> ActionStatus:
    if run_status == "budget_exhausted":
        return ActionStatus.BUDGET_EXHAUSTED
    if run_status == "cancelled":
        return ActionStatus.CANCELLED
    return ActionStatus.ERROR
