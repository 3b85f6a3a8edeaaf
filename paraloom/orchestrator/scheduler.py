"""Run one round's DAG: each subtask starts the moment its last dependency finishes.

A finished subtask's task goes on with the last dependent it made ready (after a
checkpoint, as a new task would start), the others get tasks of their own: a chain
spawns no task per link.

Concurrency is bounded globally (``max_concurrency``) and per action (``action_limits``)
by anyio CapacityLimiters that belong to the :class:`Scheduler`: every round of every run
of one ``Orchestrator`` shares them, so the limits hold however many runs are in flight
at once (an embedded service). A limit counts attempts in flight: a retry's backoff
does not hold a slot, nor does a subtask waiting for its dependencies. An attempt takes
its action's slot first, then a global one, so subtasks queued behind an action limit do
not hold global slots. A nested workflow (a ``WorkflowAction``) runs its own
``Orchestrator`` with its own scheduler and limits, so a parent holding a slot while its
child runs cannot starve the child (an orchestrator nested in *itself* would share its
own limits, and can deadlock at a low ``max_concurrency``).

Each attempt may time out; failures are retried (tenacity), then a fallback is tried,
then the subtask's ``on_failure`` rule decides what happens downstream. Results are
written to the caller's dict as they finish, so nothing finished is lost when the round
fails or is cancelled.

A graceful stop (the context's :class:`~paraloom.runtime.stop.StopSignal`) starts no
new subtask, attempt, retry or fallback and lets attempts in flight finish; whatever did
not start ends ``cancelled`` (error type ``Stopped``) when the round ends.
"""

from __future__ import annotations

import time
from collections import ChainMap
from collections.abc import Awaitable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from pydantic import JsonValue

from paraloom.orchestrator.errors import ReferenceResolutionError
from paraloom.orchestrator.executor import Executor, InProcessExecutor
from paraloom.orchestrator.references import resolve_references, root_lookup
from paraloom.orchestrator.result import CostTally, watching
from paraloom.orchestrator.validation import ValidatedPlan
from paraloom.protocols.actions import (
    ActionCall,
    ActionResult,
    ActionStatus,
    ErrorInfo,
    new_id,
)
from paraloom.protocols.approval import ApprovalDecision, PendingApproval
from paraloom.protocols.events import (
    ActionFinished,
    ActionStarted,
    SubtaskFinished,
    SubtaskRetried,
    SubtaskSkipped,
    SubtaskStarted,
)
from paraloom.protocols.plan import FailurePolicy, Subtask
from paraloom.protocols.trusted import trusted_model
from paraloom.runtime.approval import ApprovalRule, needs_approval
from paraloom.runtime.context import Action, ActionContext, discard_event
from paraloom.runtime.limits import SharedLimit, take_slot
from paraloom.tools.actionset import ActionSet
from paraloom.tools.wrappers.retry import retry_attempts
from paraloom.tools.wrappers.timeout import invoke_with_timeout

__all__ = ["RoundOutcome", "Scheduler"]


@dataclass(slots=True)
class RoundOutcome:
    """``failed_by`` is the subtask whose ``on_failure: fail`` stopped the round;
    ``reused`` the subtasks whose result was taken from ``reuse`` (a resumed run)."""

    results: dict[str, ActionResult]
    failed_by: str | None = None
    reused: frozenset[str] = frozenset()
    deferred: frozenset[str] = frozenset()
    """Subtasks left waiting for an approval (a detached gate): not run, nor their
    dependents; the run ends ``waiting``."""


class Scheduler:
    def __init__(
        self,
        actions: ActionSet,
        *,
        max_concurrency: int = 64,
        action_limits: Mapping[str, int] | None = None,
        default_policy: FailurePolicy | None = None,
        executor: Executor | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        for name, n in (action_limits or {}).items():
            if n < 1:
                raise ValueError(f"action_limits[{name!r}] must be >= 1, got {n}")
        self.actions = actions
        self.default_policy = default_policy or FailurePolicy()
        self.executor: Executor = executor or InProcessExecutor()
        # Shared by every round of every run; one CapacityLimiter per event loop each.
        self._global_limit = SharedLimit(max_concurrency)
        self._action_limits = {name: SharedLimit(n) for name, n in (action_limits or {}).items()}

    @property
    def max_concurrency(self) -> int:
        """Attempts in flight at once, over every run of this scheduler (fixed)."""
        return self._global_limit.total

    @property
    def action_limits(self) -> Mapping[str, int]:
        """Attempts of an action in flight at once, over every run (fixed)."""
        return MappingProxyType({name: lim.total for name, lim in self._action_limits.items()})

    def limiters(self) -> tuple[anyio.CapacityLimiter, dict[str, anyio.CapacityLimiter]]:
        """The current event loop's global and per-action limiters (created on first use),
        e.g. to read their ``statistics()``."""
        return (
            self._global_limit.limiter(),
            {name: lim.limiter() for name, lim in self._action_limits.items()},
        )

    async def run(
        self,
        plan: ValidatedPlan,
        *,
        context: ActionContext,
        round: int = 1,
        earlier: Mapping[str, ActionResult] | None = None,
        task_input: JsonValue = None,
        results: MutableMapping[str, ActionResult] | None = None,
        reuse: Mapping[str, ActionResult] | None = None,
        events: bool = True,
    ) -> RoundOutcome:
        """Run the plan. ``earlier`` holds results of earlier rounds (for references);
        ``results`` (optional) receives each result the moment it is known; subtasks
        with an ``ok`` result in ``reuse`` (a resumed run) whose dependencies were all
        reused are not executed again. ``events=False``: the round's own lifecycle
        events (subtask and action started/finished…) are not built, for a caller with
        no listener (the actions' own events still reach ``context.emit``)."""
        state = _Round(
            scheduler=self,
            plan=plan,
            context=context,
            round=round,
            earlier=earlier if earlier is not None else {},
            task_input=task_input,
            sink=results if results is not None else {},
            reuse={k: v for k, v in (reuse or {}).items() if v.ok},
            emitting=events and context.emit is not discard_event,
        )
        await state.run()
        own = {sid: state.sink[sid] for sid in plan.order if sid in state.sink}
        return RoundOutcome(
            results=own,
            failed_by=state.failed_by,
            reused=frozenset(state.reused),
            deferred=frozenset(state.deferred),
        )


@dataclass
class _Round:
    scheduler: Scheduler
    plan: ValidatedPlan
    context: ActionContext
    round: int
    earlier: Mapping[str, ActionResult]
    task_input: JsonValue
    sink: MutableMapping[str, ActionResult]
    reuse: Mapping[str, ActionResult]
    emitting: bool
    failed_by: str | None = None
    started: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    reused: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    tg: TaskGroup | None = None

    def __post_init__(self) -> None:
        self.by_id = self.plan.by_id
        # How many dependencies each subtask still waits for (a count: no set per node).
        self.waiting = {sid: len(ds) for sid, ds in self.plan.deps.items()}
        self.dependents = self.plan.dependents
        # Shared with every other round and run of the scheduler: never skipped because
        # this round alone is small (taking a free slot costs no checkpoint anyway).
        self.limiter, self.action_limiters = self.scheduler.limiters()
        self.pace = self.context.pace
        self.stop = self.context.stop  # tested inline on the hot path (no property call)
        self.rules: dict[str, ApprovalRule | None] = {}
        # References see this round's results as they arrive, then earlier rounds'.
        # (The orchestrator passes one dict as both: looked up directly, no ChainMap.)
        known: Mapping[str, ActionResult] = (
            self.sink if self.earlier is self.sink else ChainMap(self.sink, dict(self.earlier))
        )
        self.lookup = root_lookup(self.task_input, known)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            for sid in self.plan.order:
                if not self.waiting[sid]:
                    self._start(sid)
        if self.stop is not None and self.stop.requested:
            now = time.time()
            for sid in self.plan.order:
                if sid not in self.done:
                    self._finish(sid, self._stopped(sid, "this subtask started", now))

    def _stopped(self, sid: str, what: str, started: float) -> ActionResult:
        stop = self.context.stop
        reason = (stop.reason if stop is not None else None) or "the run was stopped"
        return _status_result(
            sid,
            self.by_id[sid].action,
            ActionStatus.CANCELLED,
            "Stopped",
            f"{reason} before {what}",
            started,
        )

    # -- lifecycle -------------------------------------------------------------------

    def _start(self, sid: str) -> None:
        assert self.tg is not None
        # a graceful stop: marked cancelled when the round ends
        if self.stop is not None and self.stop.requested:
            return
        self.started.add(sid)
        self.tg.start_soon(self._run_subtasks, sid, name=f"subtask:{sid}")

    async def _run_subtasks(self, sid: str) -> None:
        """Run ``sid``, then, one after another in this same task, the dependent each
        subtask leaves ready last (the others get tasks of their own): a chain spawns
        no task per link, and the concurrency is the same (this task would end)."""
        while True:
            ready = await self._run_subtask(sid)
            if ready is None:
                return
            sid = ready
            try:
                await anyio.lowlevel.checkpoint()  # others run first, as for a new task
            except anyio.get_cancelled_exc_class():
                self._finish(sid, _cancelled(sid, self.by_id[sid].action, time.time()))
                raise

    async def _run_subtask(self, sid: str) -> str | None:
        """Run ``sid``; the dependent it left ready for this task to run next, if any."""
        if self.pace is not None:  # a bounded event stream follows the run
            await self.pace(1)
        subtask = self.by_id[sid]
        policy = subtask.policy or self.scheduler.default_policy
        # A stored result is reused only if its inputs are unchanged: every dependency
        # reused too (a dependent that ran on a failed input's null must run again).
        if sid in self.reuse and self.plan.deps[sid] <= self.reused:
            self.reused.add(sid)
            self._finish(sid, self.reuse[sid], reused=True)
            return self._after(sid, self.reuse[sid], policy)
        # Approval comes first: a waiting subtask holds no slot and no budget.
        gate = self.context.approvals
        rule: ApprovalRule | None = None
        if gate is not None:
            rule = self.rules.get(subtask.action, _UNKNOWN)
            if rule is _UNKNOWN:  # looked up once per action and round
                action = self.scheduler.actions.get(subtask.action)
                rule = self.rules[subtask.action] = gate.rule_for(action, subtask.action)
        approval = None if rule is None or rule is False else await self._approval(subtask, rule)
        if approval is _DEFERRED:
            self.deferred.add(sid)
            return None
        if isinstance(approval, _Refused):
            self._finish(sid, approval.result)
            return self._after(sid, approval.result, approval.policy)
        started = time.time()
        if self.emitting:
            deps = self.plan.deps[sid]
            self.context.emit(
                trusted_model(  # from the validated plan: not validated again
                    SubtaskStarted,
                    {
                        "run_id": self.context.run_id,
                        "ts": started,
                        "type": "subtask_started",
                        "round": self.round,
                        "subtask_id": sid,
                        "action": subtask.action,
                        "kind": self.scheduler.actions.get(subtask.action).spec.kind,
                        "depends_on": tuple(sorted(deps)) if len(deps) > 1 else tuple(deps),
                    },
                )
            )
        spent = CostTally()  # every LLM call of every attempt: the subtask's cost
        try:
            result = spent.charge(await self._execute(subtask, policy, spent, approval))
        except anyio.get_cancelled_exc_class():
            self._finish(sid, spent.charge(_cancelled(sid, subtask.action, started)))
            raise
        self._finish(sid, result)
        return self._after(sid, result, policy)

    async def _approval(
        self, subtask: Subtask, rule: ApprovalRule
    ) -> dict[str, JsonValue] | _Refused | object:
        """``None`` (no approval needed, or approved as is), the edited arguments, a
        refusal (its result and how dependents take it) or ``_DEFERRED``."""
        gate = self.context.approvals
        assert gate is not None
        try:
            arguments = resolve_references(subtask.arguments, self.lookup)
        except (ReferenceResolutionError, ValueError):
            return None  # the attempt reports the reference error
        assert isinstance(arguments, dict)
        if not needs_approval(rule, arguments):
            return None
        request = PendingApproval(
            key=subtask.id,
            run_id=self.context.run_id,
            round=self.round,
            subtask_id=subtask.id,
            action=subtask.action,
            arguments=arguments,
        )
        decision = await gate.request(request, self.context.emit)
        if decision is None:
            return _DEFERRED
        if decision.approved:
            return {**arguments, **decision.arguments} if decision.arguments else None
        return _refusal(subtask, decision)

    async def _execute(
        self,
        subtask: Subtask,
        policy: FailurePolicy,
        spent: CostTally,
        edited: object = None,
    ) -> ActionResult:
        try:
            if isinstance(edited, dict):
                arguments: JsonValue = edited
            elif subtask.id in self.plan.referencing:
                arguments = resolve_references(subtask.arguments, self.lookup)
            else:  # no reference inside (scanned once, by validate_plan); a copy, as
                arguments = dict(subtask.arguments)  # validating the call made one
        except (ReferenceResolutionError, ValueError) as exc:
            return _status_result(
                subtask.id,
                subtask.action,
                ActionStatus.ERROR,
                "ReferenceError",
                str(exc),
                time.time(),
            )
        assert isinstance(arguments, dict)
        action = self.scheduler.actions.get(subtask.action)
        result = await self._attempts(subtask, action, arguments, policy, spent)
        if not result.ok and policy.fallback is not None:
            fallback = self.scheduler.actions.get(policy.fallback)
            result = await self._attempts(subtask, fallback, arguments, policy, spent)
        return result

    def _attempts(
        self,
        subtask: Subtask,
        action: Action,
        arguments: dict[str, JsonValue],
        policy: FailurePolicy,
        spent: CostTally,
    ) -> Awaitable[ActionResult]:
        """The attempts of ``action`` for ``subtask`` (the awaitable of the first one
        itself when there is no retry: no closure, no extra frame)."""
        if policy.retries == 0:
            return self._attempt(subtask, action, arguments, policy, spent, 1)
        return retry_attempts(
            partial(self._attempt, subtask, action, arguments, policy, spent),
            policy,
            partial(self._on_retry, subtask),
        )

    async def _attempt(
        self,
        subtask: Subtask,
        action: Action,
        arguments: dict[str, JsonValue],
        policy: FailurePolicy,
        spent: CostTally,
        n: int,
    ) -> ActionResult:
        spec = action.spec
        action_limiter = self.action_limiters.get(spec.name)
        if self.stop is not None and self.stop.requested:
            return self._stopped(subtask.id, f"attempt {n} started", time.time())
        # the action's slot first: waiting for it must not hold a global slot
        if action_limiter is not None and not take_slot(action_limiter):
            await action_limiter.acquire()
        try:
            if not take_slot(self.limiter):  # no coroutine when a slot is free
                await self.limiter.acquire()
            try:
                # asked while this attempt waited for a slot
                if self.stop is not None and self.stop.requested:
                    return self._stopped(subtask.id, f"attempt {n} started", time.time())
                # the deadline counts from the moment the attempt may start
                # Built from valid values without validating them again: the arguments
                # are JSON from a validated plan, outputs and the run's input (the
                # action validates them against its own schema).
                call = trusted_model(
                    ActionCall,
                    {
                        "call_id": new_id("call_"),
                        "action": spec.name,
                        "arguments": arguments,
                        "run_id": self.context.run_id,
                        "subtask_id": subtask.id,
                        "parent_call_id": self.context.call_id,
                        "attempt": n,
                        "deadline": None
                        if policy.timeout_s is None
                        else time.time() + policy.timeout_s,
                    },
                )
                # a subtask of one attempt: its tally is the attempt's
                single = policy.retries == 0 and policy.fallback is None
                attempt_spent = spent if single else CostTally()
                tallies = (spent,) if single else (spent, attempt_spent)
                ctx = self.context.child(call, watching(self.context.emit, *tallies))
                if self.pace is not None:
                    await self.pace(1)
                if self.emitting:
                    self.context.emit(
                        trusted_model(  # the call's values, validated with it
                            ActionStarted,
                            {
                                "run_id": self.context.run_id,
                                "ts": time.time(),
                                "type": "action_started",
                                "call_id": call.call_id,
                                "action": spec.name,
                                "kind": spec.kind,
                                "subtask_id": subtask.id,
                                "parent_call_id": call.parent_call_id,
                                "attempt": n,
                                "arguments": call.arguments,
                            },
                        )
                    )
                try:
                    if policy.timeout_s is None:
                        result = await self._invoke(action, call, ctx)
                    else:
                        result = await invoke_with_timeout(
                            partial(self._invoke, action, call, ctx), call, policy.timeout_s
                        )
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:  # an adapter broke its contract; the run goes on
                    result = ActionResult.failure(
                        call, "error", type(exc).__name__, f"action raised: {exc}"
                    )
                except (SystemExit, KeyboardInterrupt) as exc:  # sys.exit() in an action
                    result = ActionResult.failure(
                        call, "error", type(exc).__name__, f"action raised {type(exc).__name__}"
                    )
            finally:
                self.limiter.release()
        finally:
            if action_limiter is not None:
                action_limiter.release()
        result = attempt_spent.charge(result)  # a timed-out attempt's calls too
        if self.pace is not None:  # ActionFinished, then SubtaskFinished or a retry
            await self.pace(2)
        if self.emitting:
            self.context.emit(
                trusted_model(
                    ActionFinished,
                    {
                        "run_id": self.context.run_id,
                        "ts": time.time(),
                        "type": "action_finished",
                        "call_id": call.call_id,
                        "kind": spec.kind,
                        "result": result,
                    },
                )
            )
        return result

    def _on_retry(self, subtask: Subtask, result: ActionResult, delay: float) -> None:
        if self.emitting:
            reason = result.error.message if result.error else result.status.value
            self.context.emit(
                SubtaskRetried(
                    run_id=self.context.run_id,
                    round=self.round,
                    subtask_id=subtask.id,
                    attempt=result.attempt,
                    reason=reason,
                    delay_s=delay,
                )
            )

    def _invoke(
        self, action: Action, call: ActionCall, ctx: ActionContext
    ) -> Awaitable[ActionResult]:
        executor = self.scheduler.executor
        if type(executor) is InProcessExecutor:  # one frame less per attempt
            return action.invoke(call, ctx)
        return executor.invoke(action, call, ctx)

    # -- bookkeeping -----------------------------------------------------------------

    def _finish(self, sid: str, result: ActionResult, *, reused: bool = False) -> None:
        self.done.add(sid)
        self.sink[sid] = result
        if self.emitting:
            self.context.emit(
                trusted_model(
                    SubtaskFinished,
                    {
                        "run_id": self.context.run_id,
                        "ts": time.time(),
                        "type": "subtask_finished",
                        "round": self.round,
                        "subtask_id": sid,
                        "result": result,
                        "reused": reused,
                    },
                )
            )

    def _after(self, sid: str, result: ActionResult, policy: FailurePolicy) -> str | None:
        """Start the dependents ``sid`` leaves ready; the last one is returned instead,
        marked started, for the calling task to run next."""
        # stopping: nothing new starts, nothing running is cut short
        if self.stop is not None and self.stop.requested:
            return None
        if result.status is ActionStatus.OK or policy.on_failure == "continue":
            waiting = self.waiting
            ready: str | None = None
            for dep in self.dependents.get(sid, ()):
                left = waiting[dep] = waiting[dep] - 1
                if not left and dep not in self.started:
                    if ready is not None:
                        self._start(ready)
                    ready = dep
            if ready is not None:
                self.started.add(ready)
            return ready
        if policy.on_failure == "fail":
            self.failed_by = sid
            reason = f"run stopped: subtask {sid!r} failed ({_describe(result)})"
            for other in self.plan.order:
                if other not in self.started:
                    self._skip(other, reason)
            assert self.tg is not None
            self.tg.cancel_scope.cancel()
            return None
        reason = f"dependency {sid!r} failed ({_describe(result)})"
        stack = list(self.dependents.get(sid, ()))
        while stack:
            dep = stack.pop()
            if dep in self.started:
                continue
            self._skip(dep, reason)
            stack.extend(self.dependents.get(dep, ()))
        return None

    def _skip(self, sid: str, reason: str) -> None:
        self.started.add(sid)
        now = time.time()
        self.done.add(sid)
        self.sink[sid] = _status_result(
            sid, self.by_id[sid].action, ActionStatus.SKIPPED, "Skipped", reason, now
        )
        if self.emitting:
            self.context.emit(
                SubtaskSkipped(
                    run_id=self.context.run_id, round=self.round, subtask_id=sid, reason=reason
                )
            )


_DEFERRED = object()
_UNKNOWN: Any = object()


@dataclass(frozen=True, slots=True)
class _Refused:
    result: ActionResult
    policy: FailurePolicy


def _refusal(subtask: Subtask, decision: ApprovalDecision) -> _Refused:
    """A rejection skips the subtask and its dependents; ``skipped`` (a timeout's
    outcome) lets the dependents run on ``null``; ``failed`` stops the run."""
    who = f" by {decision.by}" if decision.by else ""
    why = f": {decision.reason}" if decision.reason else ""
    if decision.outcome == "failed":
        status, kind, rule = ActionStatus.ERROR, "ApprovalFailed", "fail"
    elif decision.outcome == "skipped":
        status, kind, rule = ActionStatus.SKIPPED, "ApprovalSkipped", "continue"
    else:
        status, kind, rule = ActionStatus.SKIPPED, "ApprovalRejected", "skip_dependents"
    message = f"approval {decision.outcome}{who}{why}"
    result = _status_result(subtask.id, subtask.action, status, kind, message, time.time())
    return _Refused(result, FailurePolicy(on_failure=rule))


def _cancelled(sid: str, action: str, started: float) -> ActionResult:
    return _status_result(
        sid, action, ActionStatus.CANCELLED, "Cancelled", "the run was cancelled", started
    )


def _describe(result: ActionResult) -> str:
    if result.error is not None:
        return f"{result.status.value}: {result.error.describe()}"
    return result.status.value


def _status_result(
    sid: str, action: str, status: ActionStatus, error_type: str, message: str, started: float
) -> ActionResult:
    return ActionResult(
        call_id=f"{sid}:{status.value}",
        action=action,
        status=status,
        error=ErrorInfo(type=error_type, message=message),
        started_at=started,
        ended_at=time.time(),
    )
