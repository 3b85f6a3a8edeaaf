"""Errors of planning and plan validation."""

from __future__ import annotations

__all__ = ["PlanValidationError", "PlanningError", "ReferenceResolutionError"]


class PlanningError(Exception):
    """The planner could not produce a usable next step; the run fails with this reason."""


class PlanValidationError(PlanningError):
    """A plan breaks a rule. ``problems`` lists each one, naming the subtask."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid plan:\n" + "\n".join(f"- {p}" for p in problems))


class ReferenceResolutionError(Exception):
    """A reference object points at something that is not there at run time."""
