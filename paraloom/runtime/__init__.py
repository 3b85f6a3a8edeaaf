"""Runtime primitives shared by every adapter: the Action interface, its context, the
shared budget, the model-selection hook, shared concurrency limits and the one redactor."""

from paraloom.runtime.budget import Budget, BudgetExhausted, Reservation, to_decimal
from paraloom.runtime.context import Action, ActionContext, EventSink, discard_event
from paraloom.runtime.limits import SharedLimit, acquire_slot
from paraloom.runtime.redact import Redactor, redact, register_secret
from paraloom.runtime.selection import ModelSelector, Selection, SelectionRequest, StepKind

__all__ = [
    "Action",
    "ActionContext",
    "Budget",
    "BudgetExhausted",
    "EventSink",
    "ModelSelector",
    "Redactor",
    "Reservation",
    "Selection",
    "SelectionRequest",
    "SharedLimit",
    "StepKind",
    "acquire_slot",
    "discard_event",
    "redact",
    "register_secret",
    "to_decimal",
]
