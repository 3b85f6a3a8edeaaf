"""The outcome of a run, and the feedback a planner gets between rounds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.actions import ActionResult, ActionStatus, TokenUsage
from paraloom.protocols.events import Event, LLMCallFinished, RunStatus, UsageAnomaly
from paraloom.protocols.feedback import StateFeedback, SubtaskFeedback
from paraloom.protocols.trusted import trusted_model
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import EventSink

__all__ = [
    "MESSAGE_CHARS",
    "TALLIED",
    "CostTally",
    "RunResult",
    "RunStatus",
    "build_feedback",
    "merge_usage",
    "not_ok",
    "summarize_failures",
]


class RunResult(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    run_id: str
    workflow: str
    status: RunStatus
    output: JsonValue = None
    error: str | None = None
    rounds: int = 0
    subtasks: dict[str, ActionResult] = Field(default_factory=dict)
    subtask_rounds: dict[str, int] = Field(default_factory=dict)
    failed: tuple[str, ...] = Field(
        default=(), description="Subtasks that did not end ok (failed, skipped, cancelled)."
    )
    cost_usd: Decimal = Field(
        default=Decimal(0),
        description="What every LLM call of the run cost: each attempt, abandoned call "
        "(its worst case held), planner round and nested workflow; the sum of the run's "
        "LLMCallFinished events.",
    )
    usage: dict[str, TokenUsage] = Field(default_factory=dict)
    warnings: list[str] = Field(
        default_factory=list,
        description="Why a run with an answer has status 'warning' (usage anomalies, "
        "spend past the budget's limit).",
    )
    started_at: float = Field(default_factory=time.time)
    ended_at: float = Field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def elapsed_s(self) -> float:
        return self.ended_at - self.started_at

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Past a few subtasks, their results by count: ``asyncio.run``/``anyio.run``
        (Python 3.11) take the repr of the result a run returns, and the full repr of a
        100,000-subtask run takes a second."""
        for name, value in super().__repr_args__():
            if name in _COUNTED and len(value) > REPR_SUBTASKS:
                value = _Counted(len(value), "subtasks")
            yield name, value


REPR_SUBTASKS = 10
"""A :class:`RunResult`'s repr shows its subtasks' results up to this many."""
_COUNTED = frozenset({"subtasks", "subtask_rounds", "failed"})


class _Counted:
    __slots__ = ("n", "what")

    def __init__(self, n: int, what: str) -> None:
        self.n, self.what = n, what

    def __repr__(self) -> str:
        return f"<{self.n} {self.what}>"


def watching(emit: EventSink, *tallies: CostTally) -> EventSink:
    """``emit``, with every event also observed by each of ``tallies`` first (one
    closure for several tallies: a scheduler attempt feeds its own and its subtask's)."""

    def observe_all(event: Event) -> None:
        for tally in tallies:
            tally.observe(event)
        emit(event)

    return observe_all


TALLIED: frozenset[type] = frozenset({LLMCallFinished, UsageAnomaly})
"""The events :meth:`CostTally.observe` counts (it ignores every other one)."""


class CostTally:
    """The one cost tally of a run: the sum of every ``LLMCallFinished`` it sees (the
    run's planner rounds, every attempt of every subtask, abandoned calls at the worst
    case held, nested workflows' calls), plus ``prior`` (what earlier sessions of a
    resumed run spent). ``RunResult.cost_usd``, ``RunFinished.cost_usd`` and the store's
    run cost are this number. Usage anomalies seen become the run's warnings.

    The scheduler keeps one per subtask and one per attempt (:meth:`watch`,
    :meth:`charge`): a subtask's ``cost_usd`` is the sum of its attempts' calls, so the
    subtasks' costs (plus the planner's calls) add up to the run's."""

    __slots__ = ("abandoned", "anomalies", "calls", "cost_usd", "usage")  # one per subtask

    def __init__(self, prior_usd: Decimal = Decimal(0)) -> None:
        self.cost_usd = prior_usd
        self.usage: dict[str, TokenUsage] = {}
        self.calls = 0
        self.abandoned = 0
        self.anomalies: list[str] = []

    def observe(self, event: Event) -> None:
        if isinstance(event, LLMCallFinished):
            self.cost_usd += event.cost_usd
            self.calls += 1
            self.abandoned += int(event.abandoned)
            u = self.usage.get(event.model)
            self.usage[event.model] = event.usage if u is None else u + event.usage
        elif isinstance(event, UsageAnomaly):
            self.anomalies.append(
                f"usage_anomaly: {event.model} call {event.llm_call_id}: "
                + "; ".join(event.reasons)
                + f" (charged ${event.cost_usd}, reserved ${event.reserved_usd})"
            )

    def charge(self, result: ActionResult) -> ActionResult:
        """``result`` with the cost and usage of every LLM call this tally saw: what its
        attempts really spent, timed-out, cancelled and retried ones included (an
        attempt's own result knows only its last calls). Unchanged when it saw none (a
        tool that reports its own cost keeps it)."""
        if self.calls == 0:
            return result
        return result.model_copy(update={"cost_usd": self.cost_usd, "usage": dict(self.usage)})

    def warnings(self, budget: Budget | None) -> list[str]:
        out = list(self.anomalies)
        if budget is not None and budget.exceeded:
            out.append(
                f"budget exceeded: ${budget.spent_usd} spent against a limit of "
                f"${budget.limit_usd} (a provider billed more than the reserved worst case)"
            )
        return out


def merge_usage(usages: Iterable[Mapping[str, TokenUsage]]) -> dict[str, TokenUsage]:
    total: dict[str, TokenUsage] = {}
    for usage in usages:
        for model, u in usage.items():
            total[model] = total[model] + u if model in total else u.model_copy()
    return total


def not_ok(results: Mapping[str, ActionResult]) -> list[str]:
    """The ids of the results that did not end ok (failed, skipped, cancelled), in order
    (the status read directly: no property call per result)."""
    return [sid for sid, r in results.items() if r.status is not ActionStatus.OK]


MESSAGE_CHARS = 300
"""An error message is cut to this many characters in a run's error summary."""
_NAMES_SHOWN = 5


def _why(result: ActionResult) -> str:
    if result.error is None:
        return result.status.value
    return f"{result.status.value}: {result.error.describe(MESSAGE_CHARS)}"


def _names(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_NAMES_SHOWN])
    return shown + (f", … ({len(ids) - _NAMES_SHOWN} more)" if len(ids) > _NAMES_SHOWN else "")


def summarize_failures(
    ids: Iterable[str], results: Mapping[str, ActionResult], *, roots_shown: int = 3
) -> str:
    """A bounded account of the subtasks ``ids`` that did not end ok: root causes first
    (subtasks that failed themselves, each with its error, shortened), then the skipped
    ones by name and count. When a skipped subtask is named, the run's other failures
    are its possible causes and are listed among the roots."""
    wanted = [i for i in dict.fromkeys(ids) if i in results]
    skipped = [i for i in wanted if results[i].status is ActionStatus.SKIPPED]
    roots = [i for i in wanted if results[i].status is not ActionStatus.SKIPPED]
    if skipped:
        roots += [
            sid
            for sid, r in results.items()
            if not r.ok and r.status is not ActionStatus.SKIPPED and sid not in roots
        ]
    parts = [f"{sid!r} ({_why(results[sid])})" for sid in roots[:roots_shown]]
    if len(roots) > roots_shown:
        parts.append(f"{len(roots) - roots_shown} more failed: {_names(roots[roots_shown:])}")
    if skipped:
        if len(skipped) == 1 and not roots:
            parts.append(f"{skipped[0]!r} ({_why(results[skipped[0]])})")
        else:
            parts.append(f"{len(skipped)} skipped as a result: {_names(skipped)}")
    return "; ".join(parts)


_SHORT = frozenset({type(None), bool, int, float})
"""Output types shown as they are (never shortened)."""


def _preview(output: JsonValue, limit: int) -> tuple[JsonValue, bool]:
    if output is None or isinstance(output, bool | int | float):
        return output, False
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    if len(text) <= limit:
        return output, False
    return text[:limit] + "…", True


def build_feedback(
    *,
    round: int,
    results: Mapping[str, ActionResult],
    rounds_of: Mapping[str, int],
    spent: Decimal,
    left: Decimal | None,
    elapsed_s: float,
    output_chars: int = 2000,
    notes: tuple[str, ...] = (),
) -> StateFeedback:
    subtasks: dict[str, SubtaskFeedback] = {}
    for sid, r in results.items():
        output, truncated = r.output, False
        if type(output) not in _SHORT:
            output, truncated = _preview(output, output_chars)
        error = r.error
        # from a validated result: built without validating it again
        subtasks[sid] = trusted_model(
            SubtaskFeedback,
            {
                "round": rounds_of.get(sid, round),
                "action": r.action,
                "status": r.status,
                "output": output,
                "output_truncated": truncated,
                "error": None if error is None else f"{error.type}: {error.message}",
                "cost_usd": r.cost_usd,
                "duration_s": r.duration_s,
            },
        )
    return StateFeedback(
        round=round,
        subtasks=subtasks,
        budget_spent_usd=spent,
        budget_left_usd=left,
        elapsed_s=elapsed_s,
        notes=notes,
    )
