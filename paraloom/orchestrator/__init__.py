"""Plan, schedule, recover: planners, plan validation, the scheduler, the Orchestrator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.orchestrator.deltas import TextSoFar
    from paraloom.orchestrator.errors import (
        PlanningError,
        PlanValidationError,
        ReferenceResolutionError,
    )
    from paraloom.orchestrator.events import EventBus, Listener, delta_listener
    from paraloom.orchestrator.executor import Executor, InProcessExecutor
    from paraloom.orchestrator.llm_planner import LLMPlanner
    from paraloom.orchestrator.orchestrator import Orchestrator, RunHandle
    from paraloom.orchestrator.planner import Planner, PlannerContext, StaticPlanner
    from paraloom.orchestrator.references import (
        find_references,
        parse_reference,
        resolve_references,
    )
    from paraloom.orchestrator.result import RunResult, RunStatus, build_feedback
    from paraloom.orchestrator.resume import ResumeState
    from paraloom.orchestrator.scheduler import RoundOutcome, Scheduler
    from paraloom.orchestrator.validation import ValidatedPlan, validate_plan
    from paraloom.orchestrator.workflow_action import WorkflowAction

# Imported on first use: importing one module of the package (as the CLI does) does
# not import all the others.
lazy_package(
    __name__,
    {
        "deltas": ("TextSoFar",),
        "errors": ("PlanningError", "PlanValidationError", "ReferenceResolutionError"),
        "events": ("EventBus", "Listener", "delta_listener"),
        "executor": ("Executor", "InProcessExecutor"),
        "llm_planner": ("LLMPlanner",),
        "orchestrator": ("Orchestrator", "RunHandle"),
        "planner": ("Planner", "PlannerContext", "StaticPlanner"),
        "references": ("find_references", "parse_reference", "resolve_references"),
        "result": ("RunResult", "RunStatus", "build_feedback"),
        "resume": ("ResumeState",),
        "scheduler": ("RoundOutcome", "Scheduler"),
        "validation": ("ValidatedPlan", "validate_plan"),
        "workflow_action": ("WorkflowAction",),
    },
)

__all__ = [
    "EventBus",
    "Executor",
    "InProcessExecutor",
    "LLMPlanner",
    "Listener",
    "Orchestrator",
    "PlanValidationError",
    "Planner",
    "PlannerContext",
    "PlanningError",
    "ReferenceResolutionError",
    "ResumeState",
    "RoundOutcome",
    "RunHandle",
    "RunResult",
    "RunStatus",
    "Scheduler",
    "StaticPlanner",
    "TextSoFar",
    "ValidatedPlan",
    "WorkflowAction",
    "build_feedback",
    "delta_listener",
    "find_references",
    "parse_reference",
    "resolve_references",
    "validate_plan",
]
