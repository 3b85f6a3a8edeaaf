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
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, TracerProvider

from paraloom.protocols.actions import ActionKind
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
from paraloom.tracing.calls import CallSpans
from paraloom.tracing.content import ContentWriter, capture_from_env
from paraloom.tracing.fastspan import SpanFactory
from paraloom.tracing.metrics import GenAIMetrics
from paraloom.tracing.spanbook import Attrs
from paraloom.tracing.spanstate import OK, Open, RunState, ns, paraloom_version, usd

__all__ = ["TracingListener"]

_log = logging.getLogger(__name__)


# Handled even for runs that are not recorded: LLM calls feed the metrics.
_APPROVAL_WAIT = "paraloom.approval.wait_s"

_ALWAYS = frozenset({RunStarted, RunFinished, LLMCallStarted, LLMCallFinished})


class TracingListener(CallSpans):
    """An event listener (``Callable[[Event], None]``) writing GenAI + OpenInference spans.

    ``capture_content`` (default: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
    else off) adds inputs, outputs and messages; secrets are scrubbed in every mode by the
    process-wide redactor (:mod:`paraloom.runtime.redact`; ``secrets`` registers more).
    Duplicate events (the same listener on a parent and a nested orchestrator) are ignored.
    Every span carries ``session.id`` (``session_id``, default: the top-level run's id)
    and ``user.id`` when ``user_id`` is given.

    It gets events unscrubbed (``scrubs_secrets``, see :mod:`paraloom.orchestrator.events`)
    and scrubs what it writes: content, errors, reasons, warnings and provider-given
    values go through the redactor as attributes are set; ids, names of configured
    actions, models and workflows, numbers and enums are written as they are.
    """

    scrubs_secrets = True

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
        self._spans = SpanFactory(self._tracer)
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
            silent = self._silent
            if silent and event.run_id in silent and type(event) not in _ALWAYS:
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

    # -- runs ---------------------------------------------------------------------

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
            span.set_attribute(Paraloom.RUN_WARNINGS, [self._content.text(w) for w in e.warnings])
        if e.status in ("ok", "warning"):
            span.set_status(OK)
        else:
            self._fail(span, e.status, e.error)
        span.end(ns(e.ts))

    # -- subtasks (events on the run span; the action calls are the spans) -------------

    def _subtask_started(self, e: SubtaskStarted) -> None:
        f = e.__dict__  # (see CallSpans._action_started)
        run = self._runs.get(f["run_id"])
        if run is not None:
            run.subtasks[f["subtask_id"]] = e

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
        f = e.__dict__  # (see CallSpans._action_started)
        run = self._runs.get(f["run_id"])
        if run is None or f["subtask_id"] in run.with_action:
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
            attrs["paraloom.approval.by"] = self._content.text(d.by)
        if d.reason:
            attrs["paraloom.approval.reason"] = self._content.text(d.reason)[:1000]
        entry.span.set_attributes(attrs)
        entry.span.set_status(OK)
        entry.span.end(ns(e.ts))
