"""Runtime primitives shared by every adapter: the Action interface, its context, the
shared budget, the model-selection hook, shared concurrency limits and the one redactor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.runtime.approval import (
        ApprovalCallback,
        ApprovalGate,
        ApprovalRule,
        TimeoutOutcome,
    )
    from paraloom.runtime.budget import Budget, BudgetExhausted, Reservation, to_decimal
    from paraloom.runtime.context import Action, ActionContext, EventSink, discard_event
    from paraloom.runtime.limits import SharedLimit, acquire_slot
    from paraloom.runtime.redact import Redactor, redact, register_secret
    from paraloom.runtime.scopes import ScopedBudget, ScopeLedger, ScopeState, UnknownScope
    from paraloom.runtime.selection import ModelSelector, Selection, SelectionRequest, StepKind
    from paraloom.runtime.stop import StopSignal
    from paraloom.runtime.worst_case import (
        InputSize,
        WorstCase,
        input_token_bound,
        measure_input,
        measure_texts,
        worst_case,
    )

# Imported on first use: importing one module of the package (as the CLI does) does
# not import all the others.
lazy_package(
    __name__,
    {
        "approval": ("ApprovalCallback", "ApprovalGate", "ApprovalRule", "TimeoutOutcome"),
        "budget": ("Budget", "BudgetExhausted", "Reservation", "to_decimal"),
        "context": ("Action", "ActionContext", "EventSink", "discard_event"),
        "limits": ("SharedLimit", "acquire_slot"),
        "redact": ("Redactor", "redact", "register_secret"),
        "scopes": ("ScopedBudget", "ScopeLedger", "ScopeState", "UnknownScope"),
        "selection": ("ModelSelector", "Selection", "SelectionRequest", "StepKind"),
        "stop": ("StopSignal",),
        "worst_case": (
            "InputSize",
            "WorstCase",
            "input_token_bound",
            "measure_input",
            "measure_texts",
            "worst_case",
        ),
    },
)

__all__ = [
    "Action",
    "ActionContext",
    "ApprovalCallback",
    "ApprovalGate",
    "ApprovalRule",
    "Budget",
    "BudgetExhausted",
    "EventSink",
    "InputSize",
    "ModelSelector",
    "Redactor",
    "Reservation",
    "ScopeLedger",
    "ScopeState",
    "ScopedBudget",
    "Selection",
    "SelectionRequest",
    "SharedLimit",
    "StepKind",
    "StopSignal",
    "TimeoutOutcome",
    "UnknownScope",
    "WorstCase",
    "acquire_slot",
    "discard_event",
    "input_token_bound",
    "measure_input",
    "measure_texts",
    "redact",
    "register_secret",
    "to_decimal",
    "worst_case",
]
