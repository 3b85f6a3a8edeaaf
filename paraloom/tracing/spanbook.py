"""The open spans of the runs a :class:`~paraloom.tracing.listener.TracingListener`
follows: where a span's parent is, starting, ending and failing spans, and ending
what a run left open."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from paraloom.tracing.attributes import GenAI, OpenInference, Paraloom
from paraloom.tracing.content import ContentWriter
from paraloom.tracing.fastspan import SpanFactory
from paraloom.tracing.spanstate import Open, RunState, ns

__all__ = ["Attrs", "SpanBook"]

Attrs = dict[str, AttributeValue]


class SpanBook:
    """Open spans by key (call id, LLM call id, ``approval:…``) and the state of each
    run; the listener's ``__init__`` sets these attributes."""

    _tracer: Tracer
    _spans: SpanFactory
    _content: ContentWriter
    _runs: dict[str, RunState]
    _open: dict[str, Open]
    session_id: str | None
    user_id: str | None

    def _parent(
        self, run_id: str, parent_call_id: str | None, run: RunState | None = None
    ) -> tuple[Context | None, str]:
        """The parent span's context and graph node (``run``: the run's state when the
        caller has it at hand)."""
        if run is None:
            run = self._runs.get(run_id)
        if run is not None and parent_call_id == run.root_call:
            return _context(run), run.node_id
        owner = self._open.get(parent_call_id) if parent_call_id else None
        if owner is not None:
            return _context(owner), owner.node_id
        if run is not None:
            return _context(run), run.node_id
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
        run: RunState | None = None,
    ) -> Open:
        """``attrs``: valid attribute values, sequences as tuples (the span keeps them);
        ``run``: the run's state when the caller has it at hand."""
        if run is None:
            run = self._runs.get(run_id)
        self._identity(attrs, run.session if run is not None else run_id)
        span = self._spans.start(name, ctx, kind, attrs, ns(ts))
        entry = Open(span, run_id, node_id or key, ts)
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
        error_type = self._content.text(error_type)
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


def _context(holder: RunState | Open) -> Context:
    """The context with ``holder``'s span current, made once per span."""
    ctx = holder.ctx
    if ctx is None:
        ctx = holder.ctx = trace.set_span_in_context(holder.span)
    return ctx
