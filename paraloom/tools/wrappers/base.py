"""The base of every action wrapper: delegate everything to the wrapped action."""

from __future__ import annotations

from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec
from paraloom.runtime.context import Action, ActionContext

__all__ = ["WrapperAction"]


class WrapperAction:
    """Wraps one action; subclasses override ``spec`` and/or ``invoke``."""

    def __init__(self, wrapped: Action) -> None:
        self.wrapped = wrapped

    @property
    def spec(self) -> ActionSpec:
        return self.wrapped.spec

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        return await self.wrapped.invoke(call, context)

    @property
    def requires_approval(self) -> object:
        """The wrapped action's approval rule (see :mod:`paraloom.runtime.approval`)."""
        return getattr(self.wrapped, "requires_approval", None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.wrapped!r})"
