"""Events → OpenTelemetry spans. The listener subscribes to a run's event stream and never
drives logic.

Parents are found by id, not through the current context: a run span holds its planner
rounds and its subtasks' action calls; an agent's span holds the calls it made; an LLM
call sits under the agent (or planner round) that made it. Span start and end times are
the events' timestamps, so spans of parallel subtasks (separate anyio tasks) nest exactly
as the calls did. The run span itself starts under whatever span is current when the run
starts (a service's request span, say), or under the calling workflow action of a nested
run.

Only the OpenTelemetry API is used here; pass SDK providers in (or call
:func:`paraloom.tracing.setup`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from paraloom.protocols.actions import ActionKind, ActionResult, TokenUsage
from paraloom.protocols.events import (
    ActionFinished,
    ActionProgress,
    ActionStarted,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    LLMCallFinished,
    LLMCallStarted,
    PlanCreated,
    RoundStarted,
    RunFinished,
    RunStarted,
    SubtaskFinished,
    SubtaskRetried,
    SubtaskSkipped,
    SubtaskStarted,
)
from paraloom.runtime.redact import REDACTOR, register_secret
from paraloom.tracing.attributes import GenAI, OpenInference, Paraloom
from paraloom.tracing.content import ContentWriter, capture_from_env
from paraloom.tracing.metrics import GenAIMetrics
from paraloom.tracing.spanstate import Open, RunState, error_type_of, ns, paraloom_version, usd

__all__ = ["TracingListener"]

_log = logging.getLogger(__name__)

Attrs = dict[str, AttributeValue]


# Handled even for runs that are not recorded: LLM calls feed the metrics.
_APPROVAL_WAIT = "paraloom.approval.wait_s"

_ALWAYS = frozenset({RunStarted, RunFinished, LLMCallStarted, LLMCallFinished})


class TracingListener:
    """An event listener (``Callable[[Event], None]``) writing GenAI + OpenInference spans.

    ``capture_content`` (default: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
    else off) adds inputs, outputs and messages; secrets are scrubbed in every mode by the
    process-wide redactor (:mod:`paraloom.runtime.redact`; ``secrets`` registers more).
    Duplicate events (the same listener on a parent and a nested orchestrator) are ignored.
    Every span carries ``session.id`` (``session_id``, default: the top-level run's id)
    and ``user.id`` when ``user_id`` is given.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        capture_content: bool | None = None,
        secrets: Iterable[str] = (),
        max_content_chars: int = 16_000,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        version = paraloom_version()
        self._tracer = trace.get_tracer("paraloom", version, tracer_provider=tracer_provider)
        self._metrics = GenAIMetrics(meter_provider, version)
        self.capture_content = capture_from_env() if capture_content is None else capture_content
        register_secret(*secrets)
        REDACTOR.refresh()
        self.redactor = REDACTOR
        self.session_id = session_id
        self.user_id = user_id
        self._content = ContentWriter(self.redactor, max_content_chars)
        self._runs: dict[str, RunState] = {}
        self._open: dict[str, Open] = {}
        self._silent: set[str] = set()
        self._lock = threading.Lock()
        self.errors = 0
        self._handlers: Mapping[type[Any], Callable[[Any], None]] = {
            RunStarted: self._run_started,
            RunFinished: self._run_finished,
            RoundStarted: self._round_started,
            PlanCreated: self._plan_created,
            SubtaskStarted: self._subtask_started,
            SubtaskRetried: self._subtask_retried,
            SubtaskSkipped: self._subtask_skipped,
            SubtaskFinished: self._subtask_finished,
            ActionStarted: self._action_started,
            ActionFinished: self._action_finished,
            ActionProgress: self._action_progress,
            LLMCallStarted: self._llm_started,
            LLMCallFinished: self._llm_finished,
            ApprovalRequested: self._approval_requested,
            ApprovalDecided: self._approval_decided,
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        with self._lock:
            if event.run_id in self._silent and type(event) not in _ALWAYS:
                return  # a run that is not recorded (no SDK, or not sampled): skip the work
            try:
                handler(event)
            except Exception as exc:  # tracing must never break a run
                self.errors += 1
                _log.warning(
                    "tracing: %s while handling a %s event", type(exc).__name__, event.type
                )

    def span_for(self, call_id: str) -> Span | None:
        """The open span of a call (action, planner round or LLM call), if any."""
        with self._lock:
            entry = self._open.get(call_id)
            return entry.span if entry is not None else None

    def close(self) -> None:
        """End every span still open (as incomplete)."""
        with self._lock:
            for run_id in list(self._runs):
                run = self._runs.pop(run_id)
                self._end_orphans(run, None, cancelled=False)
                run.span.set_attribute(Paraloom.INCOMPLETE, True)
                run.span.end()
            for key in list(self._open):
                self._open.pop(key).span.end()
            self._silent.clear()

    # -- spans ---------------------------------------------------------------------

    def _parent(self, run_id: str, parent_call_id: str | None) -> tuple[Context | None, str]:
        run = self._runs.get(run_id)
        if run is not None and parent_call_id == run.root_call:
            return trace.set_span_in_context(run.span), run.node_id
        owner = self._open.get(parent_call_id) if parent_call_id else None
        if owner is not None:
            return trace.set_span_in_context(owner.span), owner.node_id
        if run is not None:
            return trace.set_span_in_context(run.span), run.node_id
        return None, ""

    def _start(
        self,
        key: str,
        run_id: str,
        name: str,
        ctx: Context | None,
        ts: float,
        attrs: Attrs,
        *,
        node_id: str = "",
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Open:
        run = self._runs.get(run_id)
        self._identity(attrs, run.session if run is not None else run_id)
        span = self._tracer.start_span(
            name, context=ctx, kind=kind, attributes=attrs, start_time=ns(ts)
        )
        entry = Open(span=span, run_id=run_id, node_id=node_id or key, started=ts)
        self._open[key] = entry
        if run is not None:
            run.keys[key] = None
        return entry

    def _identity(self, attrs: Attrs, session: str) -> None:
        attrs[OpenInference.SESSION_ID] = self.session_id or session
        if self.user_id:
            attrs[OpenInference.USER_ID] = self.user_id

    def _pop(self, key: str) -> Open | None:
        entry = self._open.pop(key, None)
        if entry is not None:
            run = self._runs.get(entry.run_id)
            if run is not None:
                run.keys.pop(key, None)
        return entry

    def _fail(
        self, span: Span, error_type: str, message: str | None, stacktrace: str | None = None
    ) -> None:
        """Error status, ``error.type`` and one ``exception`` span event (the OTel
        convention Phoenix shows, with the stack trace when one was recorded), all
        scrubbed."""
        text = self._content.text(message)[:1000] if message else None
        span.set_attribute(GenAI.ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, text))
        event: dict[str, str] = {
            "exception.type": error_type,
            "exception.message": text or error_type,
        }
        if stacktrace:
            event["exception.stacktrace"] = self._content.redactor.text(stacktrace)
        span.add_event("exception", event)

    def _end_orphans(self, run: RunState, ts: float | None, *, cancelled: bool) -> None:
        for key in reversed(list(run.keys)):
            entry = self._open.pop(key, None)
            if entry is None:
                continue
            entry.span.set_attribute(Paraloom.INCOMPLETE, True)
            if cancelled:
                self._fail(entry.span, "cancelled", "the run ended before this call finished")
            entry.span.end(ns(ts) if ts is not None else None)
        run.keys.clear()

    # -- runs and rounds --------------------------------------------------------------

    def _run_started(self, e: RunStarted) -> None:
        if e.run_id in self._runs:
            return
        owner = self._open.get(e.parent_call_id) if e.parent_call_id else None
        ctx = trace.set_span_in_context(owner.span) if owner is not None else None
        parent_run = self._runs.get(owner.run_id) if owner is not None else None
        session = parent_run.session if parent_run is not None else e.run_id
        if owner is not None and owner.kind == ActionKind.WORKFLOW.value:
            # the workflow action's span is this run's span: one row, not two
            shared: Attrs = {Paraloom.NESTED_RUN_ID: e.run_id, GenAI.WORKFLOW_NAME: e.workflow}
            if e.budget_usd is not None:
                shared[Paraloom.BUDGET_LIMIT_USD] = usd(e.budget_usd)
            owner.span.set_attributes(shared)
            self._runs[e.run_id] = RunState(
                span=owner.span,
                root_call=e.parent_call_id,
                node_id=owner.node_id,
                session=session,
                shared=True,
            )
            if not owner.span.is_recording():
                self._silent.add(e.run_id)
            return
        attrs: Attrs = {
            GenAI.OPERATION_NAME: "invoke_workflow",
            GenAI.WORKFLOW_NAME: e.workflow,
            OpenInference.SPAN_KIND: "CHAIN",
            OpenInference.GRAPH_NODE_ID: e.run_id,
            OpenInference.GRAPH_NODE_NAME: e.workflow,
            Paraloom.RUN_ID: e.run_id,
        }
        if owner is not None:
            attrs[OpenInference.GRAPH_NODE_PARENT_ID] = owner.node_id
        if e.parent_call_id:
            attrs[Paraloom.PARENT_CALL_ID] = e.parent_call_id
        if e.budget_usd is not None:
            attrs[Paraloom.BUDGET_LIMIT_USD] = usd(e.budget_usd)
        if self.capture_content:
            self._content.io(attrs, "input", e.task)
        self._identity(attrs, session)
        span = self._tracer.start_span(
            f"invoke_workflow {e.workflow}", context=ctx, attributes=attrs, start_time=ns(e.ts)
        )
        self._runs[e.run_id] = RunState(
            span=span, root_call=e.parent_call_id, node_id=e.run_id, session=session
        )
        if not span.is_recording():
            self._silent.add(e.run_id)

    def _run_finished(self, e: RunFinished) -> None:
        run = self._runs.get(e.run_id)
        if run is None:
            return
        if e.status == "waiting":  # left waiting: its approval spans end as such
            for key in [k for k in run.keys if k.startswith("approval:")]:
                entry = self._pop(key)
                if entry is not None:
                    entry.span.set_attribute(_APPROVAL_WAIT, max(0.0, e.ts - entry.started))
                    entry.span.end(ns(e.ts))
        self._end_orphans(run, e.ts, cancelled=True)
        del self._runs[e.run_id]
        self._silent.discard(e.run_id)
        span = run.span
        span.set_attribute(Paraloom.RUN_STATUS, e.status)
        if run.shared:  # the workflow action's result sets cost, output and status
            return
        span.set_attribute(Paraloom.COST_USD, usd(e.cost_usd))
        if self.capture_content:
            attrs: Attrs = {}
            self._content.io(attrs, "output", e.output)
            span.set_attributes(attrs)
        if e.warnings:
            span.set_attribute(Paraloom.RUN_WARNINGS, list(e.warnings))
        if e.status in ("ok", "warning"):
            span.set_status(Status(StatusCode.OK))
        else:
            self._fail(span, e.status, e.error)
        span.end(ns(e.ts))

    def _round_started(self, e: RoundStarted) -> None:
        run = self._runs.get(e.run_id)
        if e.call_id in self._open or run is None:
            return
        run.pending_rounds[e.call_id] = e

    def _draw_round(self, run_id: str, call_id: str) -> None:
        """Start the span of a pending planner round (it called a model or failed)."""
        run = self._runs.get(run_id)
        e = run.pending_rounds.pop(call_id, None) if run is not None else None
        if e is None:
            return
        ctx, node = self._parent(e.run_id, None)
        self._start(
            e.call_id, e.run_id, f"plan {e.planner}", ctx, e.ts, self._round_attrs(e), node_id=node
        )

    def _round_attrs(self, e: RoundStarted | PlanCreated) -> Attrs:
        attrs: Attrs = {
            GenAI.OPERATION_NAME: "plan",
            GenAI.AGENT_NAME: e.planner,
            OpenInference.SPAN_KIND: "CHAIN",
            OpenInference.GRAPH_NODE_ID: e.call_id,
            OpenInference.GRAPH_NODE_NAME: f"plan round {e.round}",
            Paraloom.ROUND: e.round,
            Paraloom.CALL_ID: e.call_id,
            Paraloom.RUN_ID: e.run_id,
        }
        run = self._runs.get(e.run_id)
        if run is not None:
            attrs[OpenInference.GRAPH_NODE_PARENT_ID] = run.node_id
        return attrs

    def _plan_created(self, e: PlanCreated) -> None:
        run = self._runs.get(e.run_id)
        if run is not None:
            if e.call_id in run.rounds_done:
                return
            run.rounds_done.add(e.call_id)
            if e.plan is not None:
                actions = [s.action for s in e.plan.subtasks]
                run.twins.update(a for a in actions if actions.count(a) > 1)
            if e.call_id in run.pending_rounds:
                if e.error is None:  # an instant round: an event, not a 0 ms row
                    del run.pending_rounds[e.call_id]
                    self._plan_event(run, e)
                    return
                self._draw_round(e.run_id, e.call_id)
        entry = self._pop(e.call_id)
        if entry is None:
            if run is None or not e.replayed:
                return
            ctx, node = self._parent(e.run_id, None)
            attrs = self._round_attrs(e)
            attrs[Paraloom.REPLAYED] = True
            entry = self._start(
                e.call_id, e.run_id, f"plan {e.planner}", ctx, e.ts, attrs, node_id=node
            )
            self._pop(e.call_id)
        span = entry.span
        if e.plan is not None:
            span.set_attribute(Paraloom.PLAN_SUBTASKS, [s.id for s in e.plan.subtasks])
        span.set_attribute(Paraloom.PLAN_FINAL, e.plan is None and e.error is None)
        if self.capture_content:
            attrs = {}
            out: Any = e.plan.model_dump(mode="json", by_alias=True) if e.plan else e.final_output
            self._content.io(attrs, "output", out)
            span.set_attributes(attrs)
        if e.error is not None:
            self._fail(span, "PlanningError", e.error)
        else:
            span.set_status(Status(StatusCode.OK))
        span.end(ns(e.ts))

    def _plan_event(self, run: RunState, e: PlanCreated) -> None:
        attrs: Attrs = {
            Paraloom.ROUND: e.round,
            Paraloom.CALL_ID: e.call_id,
            Paraloom.PLAN_FINAL: e.plan is None,
            GenAI.AGENT_NAME: e.planner,
        }
        if e.plan is not None:
            attrs[Paraloom.PLAN_SUBTASKS] = [s.id for s in e.plan.subtasks]
        run.span.add_event("paraloom.plan", attrs, timestamp=ns(e.ts))

    # -- subtasks (events on the run span; the action calls are the spans) -------------

    def _subtask_started(self, e: SubtaskStarted) -> None:
        run = self._runs.get(e.run_id)
        if run is not None:
            run.subtasks[e.subtask_id] = e

    def _subtask_retried(self, e: SubtaskRetried) -> None:
        run = self._runs.get(e.run_id)
        if run is not None:
            run.span.add_event(
                "paraloom.subtask.retried",
                {
                    Paraloom.SUBTASK_ID: e.subtask_id,
                    Paraloom.ATTEMPT: e.attempt,
                    "paraloom.retry.reason": self._content.text(e.reason)[:1000],
                    "paraloom.retry.delay_s": e.delay_s,
                },
                timestamp=ns(e.ts),
            )

    def _subtask_skipped(self, e: SubtaskSkipped) -> None:
        run = self._runs.get(e.run_id)
        if run is not None and e.subtask_id not in run.skipped:
            run.skipped.add(e.subtask_id)
            run.span.add_event(
                "paraloom.subtask.skipped",
                {
                    Paraloom.SUBTASK_ID: e.subtask_id,
                    Paraloom.ROUND: e.round,
                    "paraloom.skip.reason": self._content.text(e.reason)[:1000],
                },
                timestamp=ns(e.ts),
            )

    def _subtask_finished(self, e: SubtaskFinished) -> None:
        """A subtask that ended without any action call (reference error, reused result)."""
        run = self._runs.get(e.run_id)
        if run is None or e.subtask_id in run.with_action:
            return
        run.with_action.add(e.subtask_id)
        r = e.result
        attrs: Attrs = {
            Paraloom.SUBTASK_ID: e.subtask_id,
            Paraloom.ROUND: e.round,
            Paraloom.ACTION_STATUS: r.status.value,
            "paraloom.action.name": r.action,
        }
        if r.error is not None:
            attrs[GenAI.ERROR_TYPE] = r.error.type
            attrs["paraloom.error.message"] = self._content.text(r.error.message)[:1000]
        name = "paraloom.subtask.reused" if e.reused else "paraloom.subtask.finished"
        run.span.add_event(name, attrs, timestamp=ns(e.ts))

    # -- approvals: a span per wait, "waiting" until decided, with the time waited -------

    def _approval_requested(self, e: ApprovalRequested) -> None:
        run, r = self._runs.get(e.run_id), e.request
        key = f"approval:{e.run_id}:{r.key}"
        if run is None or key in self._open:
            return
        attrs: Attrs = {
            OpenInference.SPAN_KIND: "CHAIN",
            "paraloom.approval.key": r.key,
            "paraloom.approval.state": "waiting",
            "paraloom.action.name": r.action,
        }
        if r.subtask_id:
            attrs[Paraloom.SUBTASK_ID] = r.subtask_id
        ctx = trace.set_span_in_context(run.span)
        self._start(key, e.run_id, f"approval {r.key}", ctx, e.ts, attrs)

    def _approval_decided(self, e: ApprovalDecided) -> None:
        entry = self._pop(f"approval:{e.run_id}:{e.key}")
        if entry is None:
            return
        d = e.decision
        attrs: Attrs = {
            "paraloom.approval.state": "decided",
            "paraloom.approval.outcome": d.outcome,
            _APPROVAL_WAIT: e.waited_s,
        }
        if d.by:
            attrs["paraloom.approval.by"] = d.by
        if d.reason:
            attrs["paraloom.approval.reason"] = self._content.text(d.reason)[:1000]
        entry.span.set_attributes(attrs)
        entry.span.set_status(Status(StatusCode.OK))
        entry.span.end(ns(e.ts))

    # -- action calls ------------------------------------------------------------------

    def _action_started(self, e: ActionStarted) -> None:
        if e.call_id in self._open:
            return
        run = self._runs.get(e.run_id)
        ctx, parent_node = self._parent(e.run_id, e.parent_call_id)
        attrs: Attrs = {
            Paraloom.CALL_ID: e.call_id,
            Paraloom.ACTION_KIND: e.kind.value,
            Paraloom.ATTEMPT: e.attempt,
            Paraloom.RUN_ID: e.run_id,
            OpenInference.GRAPH_NODE_NAME: e.action,
        }
        if e.parent_call_id:
            attrs[Paraloom.PARENT_CALL_ID] = e.parent_call_id
        node = e.call_id
        top = run is not None and e.parent_call_id == run.root_call
        if e.subtask_id:
            attrs[Paraloom.SUBTASK_ID] = e.subtask_id
        if top and run is not None and e.subtask_id:
            node = e.subtask_id
            run.with_action.add(e.subtask_id)
            started = run.subtasks.get(e.subtask_id)
            deps = started.depends_on if started else ()
            parent_node = deps[0] if deps else run.node_id
            attrs[Paraloom.DEPENDS_ON] = list(deps)
            if started is not None:
                attrs[Paraloom.ROUND] = started.round
        attrs[OpenInference.GRAPH_NODE_ID] = node
        if parent_node:
            attrs[OpenInference.GRAPH_NODE_PARENT_ID] = parent_node
        if e.kind is ActionKind.AGENT:
            name = f"invoke_agent {e.action}"
            attrs[GenAI.OPERATION_NAME] = "invoke_agent"
            attrs[GenAI.AGENT_NAME] = attrs[OpenInference.AGENT_NAME] = e.action
            attrs[GenAI.AGENT_ID] = e.action
            attrs[OpenInference.SPAN_KIND] = "AGENT"
        elif e.kind is ActionKind.WORKFLOW:
            name = f"invoke_workflow {e.action}"
            attrs[GenAI.OPERATION_NAME] = "invoke_workflow"
            attrs[GenAI.WORKFLOW_NAME] = e.action
            attrs[OpenInference.SPAN_KIND] = "CHAIN"
        else:
            name = f"execute_tool {e.action}"
            if top and run is not None and e.subtask_id and e.action in run.twins:
                name += f" [{e.subtask_id}]"  # parallel calls of one tool, told apart
            attrs[GenAI.OPERATION_NAME] = "execute_tool"
            attrs[GenAI.TOOL_NAME] = attrs[OpenInference.TOOL_NAME] = e.action
            attrs[GenAI.TOOL_CALL_ID] = e.call_id
            attrs[GenAI.TOOL_TYPE] = "function"
            attrs[OpenInference.SPAN_KIND] = "TOOL"
        if self.capture_content:
            self._content.io(attrs, "input", e.arguments)
            if e.kind is ActionKind.TOOL:
                attrs[GenAI.TOOL_CALL_ARGUMENTS] = self._content.json(e.arguments)
        entry = self._start(e.call_id, e.run_id, name, ctx, e.ts, attrs, node_id=node)
        entry.kind = e.kind.value

    def _action_progress(self, e: ActionProgress) -> None:
        entry = self._open.get(e.call_id)
        if entry is None:
            return
        attrs: Attrs = {"paraloom.progress": e.progress}
        if e.total is not None:
            attrs["paraloom.progress.total"] = e.total
        if e.message:
            attrs["paraloom.progress.message"] = self._content.text(e.message)[:1000]
        entry.span.add_event("paraloom.action.progress", attrs, timestamp=ns(e.ts))

    def _action_finished(self, e: ActionFinished) -> None:
        entry = self._pop(e.call_id)
        if entry is None:
            return
        span, r = entry.span, e.result
        attrs: Attrs = {
            Paraloom.ACTION_STATUS: r.status.value,
            Paraloom.COST_USD: usd(r.cost_usd),
        }
        if r.usage:
            total = sum(r.usage.values(), TokenUsage())
            attrs[Paraloom.USAGE_INPUT_TOKENS] = total.input_tokens
            attrs[Paraloom.USAGE_OUTPUT_TOKENS] = total.output_tokens
        if self.capture_content and r.ok:
            self._content.io(attrs, "output", r.output)
            if e.kind is ActionKind.TOOL:
                attrs[GenAI.TOOL_CALL_RESULT] = self._content.json(r.output)
        span.set_attributes(attrs)
        self._result_status(span, r)
        span.end(ns(e.ts))

    def _result_status(self, span: Span, r: ActionResult) -> None:
        if r.ok:
            span.set_status(Status(StatusCode.OK))
        else:
            self._fail(
                span,
                r.error.type if r.error else r.status.value,
                r.error.message if r.error else None,
                r.error.traceback if r.error else None,
            )

    # -- LLM calls ---------------------------------------------------------------------

    def _llm_started(self, e: LLMCallStarted) -> None:
        if e.llm_call_id in self._open:
            return
        if e.run_id in self._silent:  # metrics only
            self._open[e.llm_call_id] = Open(
                trace.INVALID_SPAN,
                e.run_id,
                "",
                e.ts,
                provider=e.provider,
                model=e.request_model or e.model,
            )
            return
        if e.parent_call_id:
            self._draw_round(e.run_id, e.parent_call_id)
        ctx, parent_node = self._parent(e.run_id, e.parent_call_id)
        model = e.request_model or e.model
        attrs: Attrs = {
            GenAI.OPERATION_NAME: "chat",
            GenAI.PROVIDER_NAME: e.provider,
            GenAI.REQUEST_MODEL: model,
            OpenInference.SPAN_KIND: "LLM",
            OpenInference.LLM_MODEL_NAME: model,
            OpenInference.LLM_PROVIDER: e.provider,
            Paraloom.POOL_MODEL: e.model,
            Paraloom.LLM_CALL_ID: e.llm_call_id,
            Paraloom.STEP_KIND: e.step_kind,
            Paraloom.RESERVED_USD: usd(e.reserved_usd),
            Paraloom.RUN_ID: e.run_id,
        }
        if e.parent_call_id:
            attrs[Paraloom.PARENT_CALL_ID] = e.parent_call_id
        if e.routing:
            self._content.routing(attrs, Paraloom.ROUTING, e.routing)
        self._content.parameters(attrs, e.parameters)
        if self.capture_content and e.tools:
            self._content.tools(attrs, e.tools)
        if self.capture_content and e.messages:
            self._content.messages(attrs, "input", e.messages)
            self._content.io(attrs, "input", e.messages)
        entry = self._start(
            e.llm_call_id,
            e.run_id,
            f"chat {model}",
            ctx,
            e.ts,
            attrs,
            node_id=parent_node,
            kind=SpanKind.CLIENT,
        )
        entry.provider, entry.model = e.provider, model

    def _llm_finished(self, e: LLMCallFinished) -> None:
        entry = self._pop(e.llm_call_id)
        if entry is None:
            return
        usage = e.usage
        error_type = error_type_of(e.error) if e.error is not None else None
        self._metrics.record(
            provider=entry.provider,
            request_model=entry.model,
            response_model=e.response_model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            duration_s=e.ts - entry.started,
            cost_usd=e.cost_usd,
            error_type=error_type,
        )
        span = entry.span
        if not span.is_recording():
            return
        attrs: Attrs = {
            GenAI.USAGE_INPUT_TOKENS: usage.input_tokens,
            GenAI.USAGE_OUTPUT_TOKENS: usage.output_tokens,
            OpenInference.LLM_TOKEN_PROMPT: usage.input_tokens,
            OpenInference.LLM_TOKEN_COMPLETION: usage.output_tokens,
            OpenInference.LLM_TOKEN_TOTAL: usage.total_tokens,
            OpenInference.LLM_COST_TOTAL: float(e.cost_usd),
            Paraloom.COST_USD: usd(e.cost_usd),
        }
        if usage.cached_input_tokens:
            attrs[GenAI.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input_tokens
            attrs[OpenInference.LLM_TOKEN_PROMPT_CACHE_READ] = usage.cached_input_tokens
        if usage.cache_write_tokens:
            attrs[GenAI.USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
            attrs[OpenInference.LLM_TOKEN_PROMPT_CACHE_WRITE] = usage.cache_write_tokens
        if usage.reasoning_tokens:
            attrs[GenAI.USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
            attrs[OpenInference.LLM_TOKEN_COMPLETION_REASONING] = usage.reasoning_tokens
        if e.abandoned:
            attrs[Paraloom.ABANDONED] = True
        if e.time_to_first_token_s is not None:
            # streamed: when the first piece came (one attribute and one event, not a
            # span per delta)
            attrs[GenAI.TIME_TO_FIRST_TOKEN] = e.time_to_first_token_s
            first = e.ts - e.latency_s + e.time_to_first_token_s
            span.add_event("gen_ai.first_token", {}, ns(min(first, e.ts)))
        if e.usage_anomaly:
            attrs[Paraloom.USAGE_ANOMALY] = e.usage_anomaly
            span.add_event("usage_anomaly", {"reason": e.usage_anomaly}, ns(e.ts))
        if e.input_cost_usd is not None:
            attrs[OpenInference.LLM_COST_PROMPT] = float(e.input_cost_usd)
            attrs[OpenInference.LLM_COST_COMPLETION] = float(e.cost_usd - e.input_cost_usd)
        if e.response_model:
            attrs[GenAI.RESPONSE_MODEL] = e.response_model
            attrs[OpenInference.LLM_MODEL_NAME] = e.response_model  # what Phoenix prices
        if e.finish_reason:
            attrs[GenAI.RESPONSE_FINISH_REASONS] = [e.finish_reason]
        if e.budget_left_usd is not None:
            attrs[Paraloom.BUDGET_LEFT_USD] = usd(e.budget_left_usd)
        if self.capture_content and e.output:
            self._content.messages(attrs, "output", [e.output])
            content = e.output.get("content")
            self._content.io(attrs, "output", content if content is not None else e.output)
        span.set_attributes(attrs)
        if error_type is not None:
            self._fail(span, error_type, e.error)
        else:
            span.set_status(Status(StatusCode.OK))
        span.end(ns(e.ts))
