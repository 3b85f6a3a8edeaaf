"""Plan, schedule, recover: planners, plan validation, the scheduler, the Orchestrator."""

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
from paraloom.orchestrator.references import find_references, parse_reference, resolve_references
from paraloom.orchestrator.result import RunResult, RunStatus, build_feedback
from paraloom.orchestrator.resume import ResumeState
from paraloom.orchestrator.scheduler import RoundOutcome, Scheduler
from paraloom.orchestrator.validation import ValidatedPlan, validate_plan
from paraloom.orchestrator.workflow_action import WorkflowAction

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
