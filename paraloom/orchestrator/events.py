"""Fan events out to listeners (callbacks) and to async streams.

Secrets are scrubbed where they would leave: listeners that write somewhere themselves
scrub what they write (tracing scrubs span attributes as it sets them, the run store
the rows it records) and say so with a true ``scrubs_secrets`` attribute (see
:func:`scrubbing_listener`): they get events as emitted, without a scrub of every event.
Every other listener and every stream (``run.events()``: user code, the CLI) gets the
events scrubbed (:func:`paraloom.runtime.redact.scrub_model`, once per event, only when
such a consumer exists): no listener, stream or store ever sees a registered secret.

:class:`~paraloom.protocols.events.LLMDelta` events are opt-in: only listeners with a
true ``wants_deltas`` attribute (see :func:`delta_listener`) and streams subscribed
with ``deltas=True`` get them, and LLM calls only stream when one exists. Deltas are
scrubbed where they are made (:mod:`paraloom.runtime.streaming`), not again here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from paraloom.orchestrator.stream import DEFAULT_MAX_BACKLOG, EventStream, Overflow
from paraloom.protocols.events import Event, LLMDelta
from paraloom.runtime.redact import scrub_model

__all__ = [
    "EventBus",
    "Listener",
    "Pace",
    "delta_listener",
    "paced",
    "scrubbing_listener",
    "scrubs_secrets",
    "wants_deltas",
]

Listener = Callable[[Event], None]


class _DeltaListener:
    __slots__ = ("fn",)
    wants_deltas = True

    def __init__(self, fn: Listener) -> None:
        self.fn = fn

    def __call__(self, event: Event) -> None:
        self.fn(event)


def delta_listener(fn: Listener) -> Listener:
    """``fn`` as a listener that also gets ``LLMDelta`` events."""
    return _DeltaListener(fn)


def wants_deltas(listener: Listener) -> bool:
    return bool(getattr(listener, "wants_deltas", False))


class _ScrubbingListener:
    __slots__ = ("fn",)
    scrubs_secrets = True

    def __init__(self, fn: Listener) -> None:
        self.fn = fn

    def __call__(self, event: Event) -> None:
        self.fn(event)


def scrubbing_listener(fn: Listener) -> Listener:
    """``fn`` as a listener that scrubs what it writes itself: it gets events unscrubbed
    (only for sinks that guarantee it, like the run store's listener)."""
    return _ScrubbingListener(fn)


def scrubs_secrets(listener: Listener) -> bool:
    return bool(getattr(listener, "scrubs_secrets", False))


class EventBus:
    """Synchronous fan-out; listeners must be quick and must not raise (a listener that
    raises is reported once through ``errors`` and then ignored for the rest of the run)."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._streams: list[EventStream] = []
        self._delta_listeners = [f for f in self._listeners if wants_deltas(f)]
        self._delta_streams: list[EventStream] = []
        self.errors: list[BaseException] = []
        self._raw: tuple[Listener, ...] = ()  # the listeners that scrub what they write
        self._clean: tuple[Listener, ...] = ()  # the others: they get scrubbed events
        self._scrub = False  # some consumer needs scrubbed events
        self._active = False
        self._update()

    def _update(self) -> None:
        # Rebuilt on every change (rare), read on every event: tuples, iterated as they
        # are (a listener dropped while an event is handled is left out of the next).
        self._raw = tuple(f for f in self._listeners if scrubs_secrets(f))
        self._clean = tuple(f for f in self._listeners if not scrubs_secrets(f))
        self._scrub = bool(self._streams or self._clean)
        self._active = bool(self._listeners or self._streams)

    @property
    def active(self) -> bool:
        return self._active

    @property
    def streamed(self) -> bool:
        """Some stream (``run.events()``) listens."""
        return bool(self._streams)

    @property
    def wants_deltas(self) -> bool:
        """Someone listens to ``LLMDelta`` events."""
        return bool(self._delta_listeners or self._delta_streams)

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if wants_deltas(listener):
            self._delta_listeners.append(listener)
        self._update()

    def subscribe(
        self,
        *,
        deltas: bool = False,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        overflow: Overflow = "block",
    ) -> EventStream:
        """A bounded stream of the events (with ``LLMDelta`` ones when ``deltas``); see
        :mod:`paraloom.orchestrator.stream` for the bound and the overflow policies."""
        stream = EventStream(max_backlog=max_backlog, overflow=overflow)
        self._streams.append(stream)
        if deltas:
            self._delta_streams.append(stream)
        self._update()
        return stream

    async def pace(self, events: int = 1) -> None:
        """Awaited by the scheduler before a step emitting up to ``events`` events."""
        for stream in self._streams:
            await stream.pace(events)

    def emit(self, event: Event) -> None:
        if isinstance(event, LLMDelta):
            self._emit_delta(event)
            return
        if not self._active:
            return
        for listener in self._raw:
            try:
                listener(event)
            except Exception as exc:
                self._drop(listener, exc)
        if not self._scrub:
            return
        clean = scrub_model(event)
        for listener in self._clean:
            try:
                listener(clean)
            except Exception as exc:
                self._drop(listener, exc)
        for stream in self._streams:
            stream.push(clean)

    def _drop(self, listener: Listener, exc: Exception) -> None:
        self.errors.append(exc)
        if listener in self._listeners:
            self._listeners.remove(listener)
        if listener in self._delta_listeners:
            self._delta_listeners.remove(listener)
        self._update()

    def _emit_delta(self, event: LLMDelta) -> None:
        for listener in list(self._delta_listeners):
            try:
                listener(event)
            except Exception as exc:
                self._drop(listener, exc)
        for stream in self._delta_streams:
            stream.push(event)

    def close(self) -> None:
        for stream in self._streams:
            stream.close()
        self._streams.clear()
        self._delta_streams.clear()
        self._update()


Pace = Callable[[int], Awaitable[None]]
"""``await pace(n)`` before a step that emits up to ``n`` events (see
:attr:`~paraloom.runtime.context.ActionContext.pace`)."""


def paced(bus: EventBus, parent: Pace | None) -> Pace | None:
    """The pace of a run on ``bus`` (nested in a run paced by ``parent``): ``None``
    when no stream listens, so an unstreamed run never awaits it."""
    if not bus.streamed:
        return parent
    if parent is None:
        return bus.pace

    async def both(events: int) -> None:
        await bus.pace(events)
        await parent(events)

    return both
