"""Child spans straight to an SDK tracer provider's span processors.

The OpenTelemetry SDK's ``Tracer.start_span`` is general: it asks the sampler, builds
a span with locks and bounded containers, cleans every attribute (about 7,000 CPU
instructions each) and hands the span to every processor at its start and its end.
For a run's calls (one span per action, agent and LLM call, in the trace of a run span)
most of that work decides nothing: the parent is a sampled local span, the default
sampler follows it, paraloom's attribute values are already valid, and the SDK's own
processors (``SimpleSpanProcessor``, ``BatchSpanProcessor``) only look at a span when it
ends. :class:`SpanFactory` checks exactly that, per span, and then builds a
:class:`FastSpan` that keeps plain attributes and, at its end, hands the processors the
same ``ReadableSpan`` the SDK would have (ids from the provider's id generator, its
resource, the tracer's instrumentation scope, span limits applied). In any other case
(another sampler, a remote or unsampled parent, a processor of another kind, span
limits on value lengths, the SDK's internal metrics on, a provider that is not the
SDK's) it calls ``Tracer.start_span`` as before.
"""

from __future__ import annotations

import inspect
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util import types

__all__ = ["FastSpan", "SpanFactory"]

_UNSET = Status(StatusCode.UNSET)
_OK_CODE, _UNSET_CODE = StatusCode.OK, StatusCode.UNSET  # members read once
_SAMPLED_RANDOM = trace.TraceFlags(
    trace.TraceFlags.SAMPLED | getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
)
_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
_INVALID_SPAN_ID, _SPAN_ID_MAX = trace.INVALID_SPAN_ID, 2**64 - 1
_new_tuple = tuple.__new__
_READABLE_PARAMETERS = (
    "name",
    "context",
    "parent",
    "resource",
    "attributes",
    "events",
    "links",
    "kind",
    "instrumentation_info",
    "status",
    "start_time",
    "end_time",
    "instrumentation_scope",
)


class FastSpan(Span):
    """A recording span whose end hands a ``ReadableSpan`` to the SDK processors. Unlike
    the SDK's span it takes no lock: the listener changes its spans under its own."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_factory",
        "_kind",
        "_name",
        "_parent",
        "_start_time",
        "_status",
    )

    def __init__(
        self,
        factory: SpanFactory,
        name: str,
        context: SpanContext,
        parent: SpanContext,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> None:
        self._factory = factory
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: Any = attributes
        self._start_time = start_time
        self._end_time: int | None = None
        self._events: Any = None
        self._status = _UNSET

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self._end_time is not None:
            return
        mine = self._attributes
        if type(mine) is dict:
            limit = self._factory.max_attributes
            if limit is None or len(mine) + len(attributes) <= limit:
                for key, value in attributes.items():
                    mine[key] = tuple(value) if isinstance(value, list) else value
                return
            # the SDK's container from here on: it drops (and counts) the oldest
            mine = self._attributes = self._factory.sdk.bounded_attributes(
                limit, mine, immutable=False
            )
        for key, value in attributes.items():
            mine[key] = value

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        self.set_attributes({key: value})

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._end_time is not None:
            return
        f, limits = self._factory, self._factory.limits
        if self._events is None:
            self._events = f.sdk.bounded_list(limits.max_events)
        attrs = f.sdk.bounded_attributes(  # as the SDK's span does (rare: no shortcut)
            limits.max_event_attributes, attributes, max_value_len=limits.max_attribute_length
        )
        self._events.append(f.sdk.event(name, attrs, timestamp))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # (``_status_code``: what the ``status_code`` property returns, without the call)
        if self._end_time is not None or self._status._status_code is _OK_CODE:
            return  # like the SDK: an OK status is final
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status._status_code is not _UNSET_CODE:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module, qualname = type(exception).__module__, type(exception).__qualname__
        attrs: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        attrs.update(attributes or {})
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end = end_time if end_time is not None else time.time_ns()
        f = self._factory
        readable = f.readable_span(  # ReadableSpan's parameters, in their order
            self._name,
            self._context,
            self._parent,
            f.resource,
            self._attributes,
            self._events if self._events is not None else (),
            (),  # links
            self._kind,
            f.instrumentation_info,
            self._status,
            self._start_time,
            end,
            f.scope,
        )
        for processor in f.processors:
            processor.on_end(readable)


class _Sdk:
    """The SDK classes a :class:`FastSpan` builds (imported once, with the SDK)."""

    def __init__(self) -> None:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util import BoundedList

        self.readable_span = ReadableSpan
        self.event = Event
        self.bounded_list = BoundedList
        self.bounded_attributes = BoundedAttributes


class SpanFactory:
    """Starts a run's spans: :class:`FastSpan` when that is the same as the SDK's span
    (see the module), ``tracer.start_span`` otherwise."""

    multi: Any
    limits: Any
    max_attributes: int | None
    resource: Any
    instrumentation_info: Any
    scope: Any
    id_generator: Any
    generate_span_id: Any
    readable_span: Any
    sdk: _Sdk

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.fast = False
        self.processors: tuple[Any, ...] = ()
        self._seen: object = None
        self._ok = False
        self._context: Context | None = None  # the last parent context, its span's
        self._parent: Any = None  # context and the trace flags of its children
        self._flags: trace.TraceFlags | None = None
        self._sdk_tracer: Any = None
        self._end_only: tuple[type, ...] = ()
        try:
            self._setup(tracer)
        except (ImportError, AttributeError):  # another SDK version, or none: the SDK path
            self.fast = False

    def _setup(self, tracer: Tracer) -> None:
        from opentelemetry.sdk.environment_variables import (
            OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED,
        )
        from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor
        from opentelemetry.sdk.trace import Tracer as SdkTracer
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

        if type(tracer) is not SdkTracer:
            return
        if tuple(inspect.signature(ReadableSpan).parameters) != _READABLE_PARAMETERS:
            return  # FastSpan.end passes them by position
        if os.environ.get(OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED, "").strip().lower() == "true":
            return  # the SDK counts its spans: let it
        sampler = tracer.sampler
        if not isinstance(sampler, ParentBased) or sampler._local_parent_sampled is not ALWAYS_ON:
            return
        limits = tracer._span_limits
        if limits.max_span_attribute_length is not None:
            return  # values would be cut: the SDK does it
        if type(tracer.span_processor) is not SynchronousMultiSpanProcessor:
            return
        self.multi = tracer.span_processor
        self.limits = limits
        self.max_attributes = limits.max_span_attributes
        self.resource = tracer.resource
        self.instrumentation_info = tracer.instrumentation_info
        self.scope = tracer._instrumentation_scope
        self.id_generator = tracer.id_generator
        self.generate_span_id = self.id_generator.generate_span_id
        self._sdk_tracer = tracer
        self._end_only = (SimpleSpanProcessor, BatchSpanProcessor)
        self.sdk = _Sdk()
        self.readable_span = self.sdk.readable_span
        self.fast = True

    @staticmethod
    def _child_flags(parent: SpanContext) -> trace.TraceFlags | None:
        """A child's trace flags when the sampler follows ``parent`` (a valid, sampled,
        local span), else None."""
        flags = parent.trace_flags
        if not parent.is_valid or not flags.sampled or parent.is_remote:
            return None
        return _SAMPLED_RANDOM if getattr(flags, "random_trace_id", False) else _SAMPLED

    def _processors_ok(self) -> bool:
        """The provider's processors only act when a span ends (checked again whenever a
        processor is added)."""
        current = self.multi._span_processors
        if current is not self._seen:
            self._seen = current
            self.processors = current
            self._ok = all(type(p) in self._end_only for p in current)
        return self._ok

    def start(
        self,
        name: str,
        context: Context | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> Span:
        """A span under the span current in ``context``; ``attributes`` hold valid
        values with sequences as tuples (what the SDK stores), and are kept."""
        if self.fast and context is not None:
            if context is not self._context:  # (a run's spans share a few parents)
                parent = trace.get_current_span(context).get_span_context()
                self._context, self._parent = context, parent
                self._flags = self._child_flags(parent)
            parent = self._parent
            if (
                self._flags is not None
                and self._sdk_tracer._tracer_config.is_enabled
                and (self.multi._span_processors is self._seen or self._processors_ok())
                and self._ok
            ):
                span_id = self.generate_span_id()
                # SpanContext(trace_id, span_id, False, flags, trace_state) without its
                # Python __new__: the same tuple (the parent's trace id is valid)
                ctx = _new_tuple(
                    SpanContext,
                    (
                        parent[0],
                        span_id,
                        False,
                        self._flags,
                        parent[4],
                        _INVALID_SPAN_ID < span_id <= _SPAN_ID_MAX,
                    ),
                )
                limit = self.max_attributes
                attrs: Any = attributes
                if limit is not None and len(attributes) > limit:
                    attrs = self.sdk.bounded_attributes(limit, attributes, immutable=False)
                return FastSpan(self, name, ctx, parent, kind, attrs, start_time)
        return self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=start_time
        )
