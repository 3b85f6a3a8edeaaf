"""Data shapes only (pydantic): the action space, plans, feedback, messages, events,
and wire-format conversions. Imports nothing else of paraloom."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.protocols.actions import (
        ActionCall,
        ActionKind,
        ActionResult,
        ActionSpec,
        ActionStatus,
        CostHint,
        ErrorInfo,
        TokenUsage,
        new_id,
    )
    from paraloom.protocols.approval import ApprovalDecision, PendingApproval
    from paraloom.protocols.events import (
        ActionFinished,
        ActionProgress,
        ActionStarted,
        ApprovalDecided,
        ApprovalRequested,
        Event,
        EventsDropped,
        LLMCallFinished,
        LLMCallStarted,
        LLMDelta,
        PlanCreated,
        RoundFinished,
        RoundStarted,
        RunFinished,
        RunStarted,
        SubtaskFinished,
        SubtaskRetried,
        SubtaskSkipped,
        SubtaskStarted,
    )
    from paraloom.protocols.feedback import StateFeedback, SubtaskFeedback
    from paraloom.protocols.messages import ChatMessage, ModelDescriptor, ToolCall
    from paraloom.protocols.openai import spec_from_openai_tool, spec_to_openai_tool
    from paraloom.protocols.plan import RESERVED_IDS, FailurePolicy, FinalAnswer, Plan, Subtask

# Imported on first use: importing one module of the package (as the CLI does) does
# not import all the others.
lazy_package(
    __name__,
    {
        "actions": (
            "ActionCall",
            "ActionKind",
            "ActionResult",
            "ActionSpec",
            "ActionStatus",
            "CostHint",
            "ErrorInfo",
            "TokenUsage",
            "new_id",
        ),
        "approval": ("ApprovalDecision", "PendingApproval"),
        "events": (
            "ActionFinished",
            "ActionProgress",
            "ActionStarted",
            "ApprovalDecided",
            "ApprovalRequested",
            "Event",
            "EventsDropped",
            "LLMCallFinished",
            "LLMCallStarted",
            "LLMDelta",
            "PlanCreated",
            "RoundFinished",
            "RoundStarted",
            "RunFinished",
            "RunStarted",
            "SubtaskFinished",
            "SubtaskRetried",
            "SubtaskSkipped",
            "SubtaskStarted",
        ),
        "feedback": ("StateFeedback", "SubtaskFeedback"),
        "messages": ("ChatMessage", "ModelDescriptor", "ToolCall"),
        "openai": ("spec_from_openai_tool", "spec_to_openai_tool"),
        "plan": ("RESERVED_IDS", "FailurePolicy", "FinalAnswer", "Plan", "Subtask"),
    },
)

__all__ = [
    "RESERVED_IDS",
    "ActionCall",
    "ActionFinished",
    "ActionKind",
    "ActionProgress",
    "ActionResult",
    "ActionSpec",
    "ActionStarted",
    "ActionStatus",
    "ApprovalDecided",
    "ApprovalDecision",
    "ApprovalRequested",
    "ChatMessage",
    "CostHint",
    "ErrorInfo",
    "Event",
    "EventsDropped",
    "FailurePolicy",
    "FinalAnswer",
    "LLMCallFinished",
    "LLMCallStarted",
    "LLMDelta",
    "ModelDescriptor",
    "PendingApproval",
    "Plan",
    "PlanCreated",
    "RoundFinished",
    "RoundStarted",
    "RunFinished",
    "RunStarted",
    "StateFeedback",
    "Subtask",
    "SubtaskFeedback",
    "SubtaskFinished",
    "SubtaskRetried",
    "SubtaskSkipped",
    "SubtaskStarted",
    "TokenUsage",
    "ToolCall",
    "new_id",
    "spec_from_openai_tool",
    "spec_to_openai_tool",
]
