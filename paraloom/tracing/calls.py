"""Spans of calls for :class:`~paraloom.tracing.listener.TracingListener`: planner
rounds, action calls (tools, agents, nested workflows) and LLM calls, with the GenAI
metrics of every LLM call."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from paraloom.protocols.actions import ActionKind, ActionResult, ActionStatus, TokenUsage
from paraloom.protocols.events import (
    ActionFinished,
    ActionProgress,
    ActionStarted,
    LLMCallFinished,
    LLMCallStarted,
    PlanCreated,
    RoundStarted,
)
from paraloom.tracing.attributes import GenAI, OpenInference, Paraloom
from paraloom.tracing.metrics import GenAIMetrics
from paraloom.tracing.spanbook import Attrs, SpanBook
from paraloom.tracing.spanstate import (
    OK,
    ActionStatic,
    Open,
    RunState,
    error_type_of,
    ns,
    usd,
)

__all__ = ["CallSpans"]

# Enum members and values read once (on Python 3.11 both are Python-level lookups).
_KIND = {k: k.value for k in ActionKind}
_STATUS = {s: s.value for s in ActionStatus}
_AGENT, _WORKFLOW, _TOOL_KIND = ActionKind.AGENT, ActionKind.WORKFLOW, ActionKind.TOOL
_OK_STATUS = ActionStatus.OK
_INTERNAL = SpanKind.INTERNAL
# Attribute names of the per-call attributes, as module constants (on Python 3.11 a
# class attribute is an unspecialized lookup; a module global is a cached one).
_CALL_ID, _ATTEMPT, _ROUND = Paraloom.CALL_ID, Paraloom.ATTEMPT, Paraloom.ROUND
_SUBTASK_ID, _DEPENDS_ON = Paraloom.SUBTASK_ID, Paraloom.DEPENDS_ON
_NODE_ID, _NODE_PARENT_ID = OpenInference.GRAPH_NODE_ID, OpenInference.GRAPH_NODE_PARENT_ID
_TOOL_CALL_ID = GenAI.TOOL_CALL_ID
_ACTION_STATUS, _COST_USD = Paraloom.ACTION_STATUS, Paraloom.COST_USD
_TOOL: Attrs = {
    GenAI.OPERATION_NAME: "execute_tool",
    GenAI.TOOL_TYPE: "function",
    OpenInference.SPAN_KIND: "TOOL",
}


class CallSpans(SpanBook):
    """Handlers of planner-round, action-call and LLM-call events (the listener's
    ``__init__`` sets these attributes too)."""

    capture_content: bool
    _metrics: GenAIMetrics
    _silent: set[str]

    # -- planner rounds ----------------------------------------------------------------

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
            span.set_status(OK)
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

    def _action_static(self, run: RunState | None, e: ActionStarted) -> ActionStatic:
        """The span name and attributes every call of ``e``'s action under its parent
        call shares in a run, made once per run (kept in ``run.actions``)."""
        action, parent_call = e.action, e.parent_call_id
        attrs: Attrs = {
            Paraloom.ACTION_KIND: _KIND[e.kind],
            Paraloom.RUN_ID: e.run_id,
            OpenInference.GRAPH_NODE_NAME: action,
        }
        if parent_call:
            attrs[Paraloom.PARENT_CALL_ID] = parent_call
        if e.kind is _AGENT:
            name = f"invoke_agent {action}"
            attrs[GenAI.OPERATION_NAME] = "invoke_agent"
            attrs[GenAI.AGENT_NAME] = attrs[OpenInference.AGENT_NAME] = action
            attrs[GenAI.AGENT_ID] = action
            attrs[OpenInference.SPAN_KIND] = "AGENT"
        elif e.kind is _WORKFLOW:
            name = f"invoke_workflow {action}"
            attrs[GenAI.OPERATION_NAME] = "invoke_workflow"
            attrs[GenAI.WORKFLOW_NAME] = action
            attrs[OpenInference.SPAN_KIND] = "CHAIN"
        else:
            name = f"execute_tool {action}"
            attrs.update(_TOOL)
            attrs[GenAI.TOOL_NAME] = attrs[OpenInference.TOOL_NAME] = action
        self._identity(attrs, run.session if run is not None else e.run_id)
        static = ActionStatic(e.kind, _KIND[e.kind], name, attrs, e.kind is _TOOL_KIND)
        if run is not None:
            run.actions[action, parent_call] = static
        return static

    def _action_started(self, e: ActionStarted) -> None:
        # The event's fields read from its __dict__: on Python 3.11 a pydantic model's
        # attribute reads are unspecialized lookups (BaseModel has a __getattr__).
        f = e.__dict__
        call_id, run_id, parent_call, sid = (
            f["call_id"],
            f["run_id"],
            f["parent_call_id"],
            f["subtask_id"],
        )
        if call_id in self._open:
            return
        run = self._runs.get(run_id)
        static = run.actions.get((f["action"], parent_call)) if run is not None else None
        if static is None or static.kind is not f["kind"]:
            static = self._action_static(run, e)
        attrs: Attrs = {**static.attrs, _CALL_ID: call_id, _ATTEMPT: f["attempt"]}
        name = static.name
        if run is not None and parent_call == run.root_call:  # a subtask's call
            top = True
            ctx = run.ctx  # (made by _parent at the run's first call)
            parent_node = run.node_id
            if ctx is None:
                ctx, parent_node = self._parent(run_id, parent_call, run)
        else:
            top = False
            ctx, parent_node = self._parent(run_id, parent_call, run)
        node = call_id
        if sid:
            attrs[_SUBTASK_ID] = sid
            if top:
                assert run is not None
                node = sid
                run.with_action.add(sid)
                started = run.subtasks.get(sid)
                if started is not None:
                    sf = started.__dict__
                    deps = sf["depends_on"]
                    attrs[_DEPENDS_ON] = deps  # a tuple: what the SDK would store
                    attrs[_ROUND] = sf["round"]
                    if deps:
                        parent_node = deps[0]
                else:
                    attrs[_DEPENDS_ON] = ()
                if static.tool and f["action"] in run.twins:
                    name += f" [{sid}]"  # parallel calls of one tool, told apart
        attrs[_NODE_ID] = node
        if parent_node:
            attrs[_NODE_PARENT_ID] = parent_node
        if static.tool:
            attrs[_TOOL_CALL_ID] = call_id
        if self.capture_content:
            self._content.io(attrs, "input", e.arguments)
            if static.tool:
                attrs[GenAI.TOOL_CALL_ARGUMENTS] = self._content.json(e.arguments)
        ts = f["ts"]
        span = self._spans.start(name, ctx, _INTERNAL, attrs, int(ts * 1_000_000_000))
        self._open[call_id] = Open(span, run_id, node, ts, "", "", static.kind_value)
        if run is not None:
            run.keys[call_id] = None

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
        f = e.__dict__  # (see _action_started)
        entry = self._pop(f["call_id"])
        if entry is None:
            return
        span, r = entry.span, f["result"]
        cost = r.cost_usd
        attrs: Attrs = {_ACTION_STATUS: _STATUS[r.status], _COST_USD: usd(cost) if cost else "0"}
        if r.usage:
            total = sum(r.usage.values(), TokenUsage())
            attrs[Paraloom.USAGE_INPUT_TOKENS] = total.input_tokens
            attrs[Paraloom.USAGE_OUTPUT_TOKENS] = total.output_tokens
        if self.capture_content and r.ok:
            self._content.io(attrs, "output", r.output)
            if e.kind is _TOOL_KIND:
                attrs[GenAI.TOOL_CALL_RESULT] = self._content.json(r.output)
        span.set_attributes(attrs)
        if r.status is _OK_STATUS:
            span.set_status(OK)
        else:
            self._result_status(span, r)
        span.end(int(f["ts"] * 1_000_000_000))

    def _result_status(self, span: Span, r: ActionResult) -> None:
        if r.status is _OK_STATUS:
            span.set_status(OK)
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
        error_type = self._content.text(error_type_of(e.error)) if e.error is not None else None
        # what the provider said comes unscrubbed (see TracingListener)
        response_model = self._content.text(e.response_model) if e.response_model else None
        self._metrics.record(
            provider=entry.provider,
            request_model=entry.model,
            response_model=response_model,
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
            anomaly = self._content.text(e.usage_anomaly)
            attrs[Paraloom.USAGE_ANOMALY] = anomaly
            span.add_event("usage_anomaly", {"reason": anomaly}, ns(e.ts))
        if e.input_cost_usd is not None:
            attrs[OpenInference.LLM_COST_PROMPT] = float(e.input_cost_usd)
            attrs[OpenInference.LLM_COST_COMPLETION] = float(e.cost_usd - e.input_cost_usd)
        if response_model:
            attrs[GenAI.RESPONSE_MODEL] = response_model
            attrs[OpenInference.LLM_MODEL_NAME] = response_model  # what Phoenix prices
        if e.finish_reason:
            attrs[GenAI.RESPONSE_FINISH_REASONS] = [self._content.text(e.finish_reason)]
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
            span.set_status(OK)
        span.end(ns(e.ts))
