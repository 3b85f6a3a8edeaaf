"""Runtime primitives shared by every adapter: the Action interface, its context, the
shared budget, the model-selection hook and shared concurrency limits."""

from paraloom.runtime.budget import Budget, BudgetExhausted, Reservation, to_decimal
from paraloom.runtime.context import Action, ActionContext, EventSink, discard_event
from paraloom.runtime.limits import SharedLimit, acquire_slot
from paraloom.runtime.selection import ModelSelector, Selection, SelectionRequest, StepKind
from paraloom.runtime.stop import StopSignal

__all__ = [
    "Action",
    "ActionContext",
    "Budget",
    "BudgetExhausted",
    "EventSink",
    "ModelSelector",
    "Reservation",
    "Selection",
    "SelectionRequest",
    "SharedLimit",
    "StepKind",
    "StopSignal",
    "acquire_slot",
    "discard_event",
    "to_decimal",
]
