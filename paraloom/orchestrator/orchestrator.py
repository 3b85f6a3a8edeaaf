"""The Orchestrator: plan → dispatch in parallel → join → feed back → plan again or finish."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import anyio
from pydantic import JsonValue

from paraloom.orchestrator.errors import PlanningError, ReferenceResolutionError
from paraloom.orchestrator.events import EventBus, Listener, paced
from paraloom.orchestrator.executor import Executor
from paraloom.orchestrator.handle import RunHandle
from paraloom.orchestrator.planner import Planner, PlannerContext
from paraloom.orchestrator.references import resolve_references, root_lookup
from paraloom.orchestrator.result import (
    MESSAGE_CHARS,
    TALLIED,
    CostTally,
    RunResult,
    RunStatus,
    build_feedback,
    not_ok,
    summarize_failures,
)
from paraloom.orchestrator.resume import ResumeState
from paraloom.orchestrator.scheduler import Scheduler
from paraloom.orchestrator.stream import DEFAULT_MAX_BACKLOG, Overflow
from paraloom.orchestrator.validation import validate_plan
from paraloom.protocols.actions import ActionResult, new_id
from paraloom.protocols.approval import ApprovalDecision, PendingApproval
from paraloom.protocols.events import (
    Event,
    PlanCreated,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from paraloom.protocols.feedback import StateFeedback
from paraloom.protocols.plan import FailurePolicy, FinalAnswer, Plan
from paraloom.runtime.approval import ApprovalCallback, ApprovalGate, ApprovalRule, TimeoutOutcome
from paraloom.runtime.budget import Budget, BudgetExhausted
from paraloom.runtime.context import Action, ActionContext
from paraloom.runtime.redact import REDACTOR, scrub_model
from paraloom.runtime.selection import ModelSelector
from paraloom.runtime.stop import StopSignal
from paraloom.tools.actionset import ActionSet

__all__ = ["Orchestrator", "RunHandle"]

BudgetArg = Budget | Decimal | float | int | str | None


class Orchestrator:
    """Runs tasks round after round with a :class:`Planner` over a set of actions.

    Holds configuration only: every run gets its own state, so one orchestrator can
    serve many concurrent runs (each with its own budget, selector and listeners). Its
    concurrency limits are the exception, on purpose: ``max_concurrency`` (attempts in
    flight) and ``action_limits`` (attempts of one action in flight) hold over all its
    concurrent runs together (see :mod:`paraloom.orchestrator.scheduler`).
    """

    def __init__(
        self,
        actions: ActionSet | Iterable[Action],
        planner: Planner,
        *,
        name: str = "workflow",
        max_rounds: int = 8,
        max_concurrency: int = 64,
        action_limits: Mapping[str, int] | None = None,
        default_policy: FailurePolicy | None = None,
        budget_usd: Decimal | float | str | None = None,
        model_selector: ModelSelector | None = None,
        executor: Executor | None = None,
        listeners: Iterable[Listener] = (),
        capture_content: bool = False,
        feedback_output_chars: int = 2000,
        requires_approval: Mapping[str, ApprovalRule] | None = None,
        approval_callback: ApprovalCallback | None = None,
        approval_timeout_s: float | None = None,
        on_approval_timeout: TimeoutOutcome = "reject",
        approve_plans: bool = False,
        plan_projector: Callable[[Plan], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.actions = actions if isinstance(actions, ActionSet) else ActionSet(actions)
        self.planner = planner
        self.name = name
        self.max_rounds = max_rounds
        self.scheduler = Scheduler(
            self.actions,
            max_concurrency=max_concurrency,
            action_limits=action_limits,
            default_policy=default_policy,
            executor=executor,
        )
        self.budget_usd = budget_usd
        self.model_selector = model_selector
        self.listeners = list(listeners)
        self.capture_content = capture_content
        self.feedback_output_chars = feedback_output_chars
        self.requires_approval = dict(requires_approval or {})
        unknown = sorted(set(self.requires_approval) - set(self.actions.names))
        if unknown:
            raise ValueError(f"requires_approval names unknown actions: {', '.join(unknown)}")
        self.approval_callback = approval_callback
        self.approval_timeout_s = approval_timeout_s
        self.on_approval_timeout: TimeoutOutcome = on_approval_timeout
        self.approve_plans = approve_plans
        """Each plan waits for approval (key ``plan:<round>``) before any subtask runs;
        a rejection's reason is fed back to the planner, which plans again."""
        self.plan_projector = plan_projector
        """Shown with a plan waiting for approval: its projected calls, tokens, dollars
        and latency (the YAML front end uses ``paraloom.config.projection``)."""

    def approval_gate(
        self, *, detach: bool = False, resume: ResumeState | None = None
    ) -> ApprovalGate:
        """A new run's approval gate with this orchestrator's rules and policy
        (``detach``: leave unanswered requests pending; see :class:`ApprovalGate`)."""
        return ApprovalGate(
            rules=self.requires_approval,
            callback=self.approval_callback,
            timeout_s=self.approval_timeout_s,
            on_timeout=self.on_approval_timeout,
            detach=detach,
            decided=resume.approvals if resume is not None else None,
        )

    async def run(
        self,
        task: JsonValue = None,
        *,
        budget: BudgetArg = None,
        run_id: str | None = None,
        on_event: Listener | None = None,
        parent: ActionContext | None = None,
        model_selector: ModelSelector | None = None,
        resume: ResumeState | None = None,
        stop: StopSignal | None = None,
        approvals: ApprovalGate | None = None,
    ) -> RunResult:
        """Run ``task`` to the end. Cancellation (an enclosing cancel scope) propagates
        after ``RunFinished(status="cancelled")`` is emitted with the results so far.

        ``parent`` nests this run in a calling action (shared budget and event sink);
        ``resume`` continues an earlier run (its id, planner decisions and results);
        ``stop`` stops it gracefully when requested: what runs finishes and is kept,
        nothing new starts, the result is ``cancelled`` (a nested run uses its parent's).
        """
        bus = EventBus([*self.listeners, *([on_event] if on_event else [])])
        options = _RunOptions(
            budget, run_id, parent, model_selector, resume, stop=stop, approvals=approvals
        )
        return await self._execute(task, bus, options)

    @asynccontextmanager
    async def start(
        self,
        task: JsonValue = None,
        *,
        budget: BudgetArg = None,
        run_id: str | None = None,
        model_selector: ModelSelector | None = None,
        resume: ResumeState | None = None,
        on_event: Listener | None = None,
        stop: StopSignal | None = None,
        approvals: ApprovalGate | None = None,
        deltas: bool = False,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        overflow: Overflow = "block",
    ) -> AsyncIterator[RunHandle]:
        """Start a run in the background: ``async with orch.start(task) as run:`` then
        ``async for event in run.events()``, ``await run.result()``, ``run.cancel()``.
        Leaving the block cancels the run if it is still going.

        ``deltas=True``: ``run.events()`` also yields the ``LLMDelta`` events of every
        LLM call (which then streams); :class:`~paraloom.orchestrator.deltas.TextSoFar`
        rebuilds each subtask's text from them.

        ``run.events()`` holds at most ``max_backlog`` unread events; ``overflow`` says
        what happens when it is full: ``"block"`` pauses the run until the consumer
        reads (lossless), ``"drop_oldest"`` drops the oldest and yields an
        :class:`~paraloom.protocols.events.EventsDropped` marker (see
        :mod:`paraloom.orchestrator.stream`). ``on_event`` and the orchestrator's
        listeners get every event either way."""
        bus = EventBus([*self.listeners, *([on_event] if on_event else [])])
        stream = bus.subscribe(deltas=deltas, max_backlog=max_backlog, overflow=overflow)
        rid = run_id or (resume.run_id if resume else new_id("run_"))
        gate = approvals or self.approval_gate(resume=resume)
        handle = RunHandle(rid, stream, gate)
        options = _RunOptions(
            budget,
            rid,
            None,
            model_selector,
            resume,
            handle._set_result,
            stop=stop,
            approvals=gate,
        )

        async def main() -> None:
            try:
                with handle._scope:
                    await self._execute(task, bus, options)
            finally:
                handle._done.set()
                bus.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(main)
            try:
                yield handle
            finally:
                handle.cancel()  # leaving the block ends a run nobody waits for

    async def _execute(self, task: JsonValue, bus: EventBus, options: _RunOptions) -> RunResult:
        parent, resume = options.parent, options.resume
        run_id = options.run_id or (resume.run_id if resume else new_id("run_"))
        shared_budget = _budget_for(options.budget, self.budget_usd, parent)
        model_selector = options.model_selector
        tally = CostTally(resume.spent_usd if resume is not None else Decimal(0))
        parent_emit = parent.emit if parent is not None else None
        if parent is None:
            REDACTOR.refresh()  # secret-named environment variables set since the last run

        def emit(event: Event) -> None:
            if type(event) in TALLIED:  # no call for the events it would ignore
                tally.observe(event)
            bus.emit(event)
            if parent_emit is not None:
                parent_emit(event)

        context = ActionContext(
            run_id=run_id,
            emit=emit,
            budget=shared_budget,
            model_selector=model_selector
            or self.model_selector
            or (parent.model_selector if parent else None),
            call_id=parent.call_id if parent else None,
            depth=parent.depth + 1 if parent else 0,
            deadline=parent.deadline if parent else None,
            capture_content=self.capture_content or (parent.capture_content if parent else False),
            stop=options.stop or (parent.stop if parent else None),
            approvals=options.approvals or self._gate_for(run_id, parent, resume),
            deltas=bus.wants_deltas or (parent.deltas if parent else False),
            pace=paced(bus, parent.pace if parent else None),
        )
        stop = context.stop
        # Subtask events only matter to listeners: with none, skip building them.
        listened = bus.active or parent_emit is not None
        subtask_context = context if listened else replace(context, emit=tally.observe)
        started = time.time()
        spent_before = shared_budget.spent_usd
        emit(
            RunStarted(
                run_id=run_id,
                workflow=self.name,
                task=task,
                budget_usd=shared_budget.limit_usd,
                parent_call_id=parent.call_id if parent else None,
            )
        )
        results: dict[str, ActionResult] = {}
        rounds_of: dict[str, int] = {}
        status: RunStatus = "max_rounds"
        output: JsonValue = None
        error: str | None = None
        feedback: StateFeedback | None = None
        round_no = 0
        # A resumed run replays its recorded planner decisions only while every result
        # they were made from is reused unchanged: once a round runs anything again, the
        # later decisions (a final answer above all) are stale and the planner decides.
        replaying = resume is not None

        def finish() -> RunResult:
            nonlocal status
            cost = tally.cost_usd
            warnings = tally.warnings(shared_budget)
            if status == "ok" and warnings:
                status = "warning"
            result = RunResult(
                run_id=run_id,
                workflow=self.name,
                status=status,
                output=output,
                error=error,
                rounds=round_no,
                subtasks=dict(results),
                subtask_rounds=dict(rounds_of),
                failed=tuple(not_ok(results)),
                cost_usd=cost,
                usage=dict(tally.usage),
                warnings=warnings,
                started_at=started,
                ended_at=time.time(),
            )
            result = scrub_model(result)  # no registered credential reaches the caller
            if options.on_result is not None:
                options.on_result(result)
            if listened:
                emit(
                    RunFinished(
                        run_id=run_id,
                        workflow=self.name,
                        status=status,
                        output=result.output,
                        error=result.error,
                        cost_usd=cost,
                        warnings=warnings,
                    )
                )
            return result

        # A planner that decides without reading the feedback (a StaticPlanner) and no
        # listener: the feedback (a record per subtask) is not built at all.
        feedback_read = listened or getattr(self.planner, "reads_feedback", True)

        def end_round(*notes: str) -> StateFeedback | None:
            """The planner's feedback on the round just ended, announced as RoundFinished
            (None when nobody reads it)."""
            if not feedback_read:
                return None
            ended = build_feedback(
                round=round_no,
                results=results,
                rounds_of=rounds_of,
                spent=shared_budget.spent_usd - spent_before,
                left=shared_budget.remaining_usd,
                elapsed_s=time.time() - started,
                output_chars=self.feedback_output_chars,
                notes=notes,
            )
            if listened:
                emit(RoundFinished(run_id=run_id, round=round_no, feedback=ended))
            return ended

        try:
            while True:
                if stop is not None and stop.requested:
                    status, error = "cancelled", stop.reason
                    break
                if round_no >= self.max_rounds:
                    error = f"no final answer after {self.max_rounds} rounds"
                    break
                round_no += 1
                plan_call = new_id("plan_")
                emit(
                    RoundStarted(
                        run_id=run_id, round=round_no, call_id=plan_call, planner=self.planner.name
                    )
                )
                pctx = PlannerContext(
                    run=replace(context, call_id=plan_call),
                    catalogue=self.actions.specs(),
                    round=round_no,
                    max_rounds=self.max_rounds,
                )
                replayed = replaying and resume is not None and round_no in resume.decisions

                plan_base = {
                    "run_id": run_id,
                    "round": round_no,
                    "call_id": plan_call,
                    "planner": self.planner.name,
                    "replayed": replayed,
                }
                try:
                    if resume is not None and replayed:
                        decision = resume.decisions[round_no]
                    else:
                        decision = await self.planner.next_round(task, feedback, pctx)
                    if isinstance(decision, FinalAnswer):
                        failed_inputs: list[str] = []
                        output = resolve_references(
                            decision.output,
                            root_lookup(task, results, failed_inputs),
                        )
                        if failed_inputs:
                            status = "failed"
                            error = "the final output depends on failed subtasks: " + (
                                summarize_failures(failed_inputs, results)
                            )
                        elif failures := not_ok(results):
                            status = "partial"
                            error = f"{len(failures)} subtask(s) did not finish ok: " + (
                                summarize_failures(failures, results)
                            )
                        else:
                            status = "ok"
                        if listened:  # validates the whole output again: only when heard
                            emit(PlanCreated.model_validate({**plan_base, "final_output": output}))
                        break
                    vplan = validate_plan(decision, self.actions, earlier_ids=results.keys())
                except BudgetExhausted as exc:
                    status, error = "budget_exhausted", f"planner: {exc}"
                except (PlanningError, ReferenceResolutionError, ValueError) as exc:
                    status, error = "failed", f"round {round_no}: {exc}"
                if status != "max_rounds":
                    emit(PlanCreated.model_validate({**plan_base, "error": error}))
                    break
                emit(PlanCreated.model_validate({**plan_base, "plan": vplan.plan}))
                if self.approve_plans:
                    verdict = await self._approve_plan(vplan.plan, context, round_no)
                    if verdict is None:
                        status, error = "waiting", f"waiting for approval: plan:{round_no}"
                        break
                    if verdict.outcome == "failed":
                        status, error = "failed", f"plan of round {round_no}: approval failed"
                        break
                    if not verdict.approved:
                        why = f": {verdict.reason}" if verdict.reason else ""
                        note = (
                            f"A person rejected your plan of round {round_no}{why}. "
                            "Plan again, taking this into account."
                        )
                        feedback = end_round(note)
                        continue
                    if verdict.arguments:
                        vplan = validate_plan(
                            _edit_plan(vplan.plan, verdict.arguments),
                            self.actions,
                            earlier_ids=results.keys(),
                        )
                rounds_of.update(dict.fromkeys(vplan.order, round_no))
                outcome = await self.scheduler.run(
                    vplan,
                    context=subtask_context,
                    round=round_no,
                    earlier=results,
                    task_input=task,
                    results=results,
                    reuse=resume.results if resume is not None and replayed else None,
                    events=listened,
                )
                if replayed and outcome.reused != set(vplan.order):
                    replaying = False
                if outcome.deferred:
                    status = "waiting"
                    error = "waiting for approval: " + ", ".join(sorted(outcome.deferred))
                    break
                feedback = end_round()
                if outcome.failed_by is not None:
                    failed = results[outcome.failed_by]
                    status = "failed"
                    error = f"subtask {outcome.failed_by!r} failed: " + (
                        failed.error.describe(MESSAGE_CHARS)
                        if failed.error
                        else failed.status.value
                    )
                    break
        except anyio.get_cancelled_exc_class():
            status, error = "cancelled", "the run was cancelled"
            finish()
            raise
        return finish()

    def _gate_for(
        self, run_id: str, parent: ActionContext | None, resume: ResumeState | None
    ) -> ApprovalGate:
        """A nested run shares its parent's gate (its requests show on the top run's
        handle, prompt and service), with its own rules; keys ``<run_id>/<subtask>``."""
        if parent is not None and parent.approvals is not None:
            return parent.approvals.nested(
                self.requires_approval,
                key_prefix=f"{run_id}/",
                timeout_s=self.approval_timeout_s,
                on_timeout=self.on_approval_timeout,
            )
        return self.approval_gate(resume=resume)

    async def _approve_plan(
        self, plan: Plan, context: ActionContext, round_no: int
    ) -> ApprovalDecision | None:
        assert context.approvals is not None
        projection = await self.plan_projector(plan) if self.plan_projector else None
        request = PendingApproval(
            key=f"plan:{round_no}",
            run_id=context.run_id,
            round=round_no,
            action=self.planner.name,
            arguments={"plan": plan.model_dump(mode="json")},
            projection=projection,
        )
        return await context.approvals.request(request, context.emit)


def _edit_plan(plan: Plan, edits: Mapping[str, JsonValue]) -> Plan:
    """``edits`` maps a subtask id to the arguments to change in it."""
    subtasks = []
    for s in plan.subtasks:
        change = edits.get(s.id)
        if isinstance(change, dict):
            s = s.model_copy(update={"arguments": {**s.arguments, **change}})
        subtasks.append(s)
    return plan.model_copy(update={"subtasks": tuple(subtasks)})


@dataclass(frozen=True, slots=True)
class _RunOptions:
    budget: BudgetArg
    run_id: str | None
    parent: ActionContext | None
    model_selector: ModelSelector | None
    resume: ResumeState | None
    on_result: Callable[[RunResult], None] | None = None
    stop: StopSignal | None = None
    approvals: ApprovalGate | None = None


def _budget_for(budget: BudgetArg, default: BudgetArg, parent: ActionContext | None) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if budget is not None:
        return Budget(budget)
    if parent is not None and parent.budget is not None:
        return parent.budget
    if isinstance(default, Budget):
        return default
    return Budget(default)
