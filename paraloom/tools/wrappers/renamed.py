"""An action under another name (prefixes are renames too)."""

from __future__ import annotations

from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.wrappers.base import WrapperAction

__all__ = ["RenamedAction", "renamed"]


class RenamedAction(WrapperAction):
    def __init__(self, wrapped: Action, name: str) -> None:
        super().__init__(wrapped)
        self._spec = wrapped.spec.model_copy(update={"name": name})
        ActionSpec.model_validate(self._spec.model_dump())  # the new name must be valid

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        inner = call.model_copy(update={"action": self.wrapped.spec.name})
        result = await self.wrapped.invoke(inner, context)
        return result.model_copy(update={"action": self._spec.name})


def renamed(action: Action, name: str) -> RenamedAction:
    return RenamedAction(action, name)
