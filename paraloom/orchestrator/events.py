"""Fan events out to listeners (callbacks) and to async streams. Every event is scrubbed
of credentials first (:func:`paraloom.runtime.redact.scrub_model`): no listener, stream
or store ever sees a registered secret.

:class:`~paraloom.protocols.events.LLMDelta` events are opt-in: only listeners with a
true ``wants_deltas`` attribute (see :func:`delta_listener`) and streams subscribed
with ``deltas=True`` get them, and LLM calls only stream when one exists. Deltas are
scrubbed where they are made (:mod:`paraloom.runtime.streaming`), not again here."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paraloom.protocols.events import Event, LLMDelta
from paraloom.runtime.redact import scrub_model

__all__ = ["EventBus", "Listener", "delta_listener", "wants_deltas"]

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


class EventBus:
    """Synchronous fan-out; listeners must be quick and must not raise (a listener that
    raises is reported once through ``errors`` and then ignored for the rest of the run)."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._streams: list[MemoryObjectSendStream[Event]] = []
        self._delta_listeners = [f for f in self._listeners if wants_deltas(f)]
        self._delta_streams: list[MemoryObjectSendStream[Event]] = []
        self.errors: list[BaseException] = []

    @property
    def active(self) -> bool:
        return bool(self._listeners or self._streams)

    @property
    def wants_deltas(self) -> bool:
        """Someone listens to ``LLMDelta`` events."""
        return bool(self._delta_listeners or self._delta_streams)

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if wants_deltas(listener):
            self._delta_listeners.append(listener)

    def subscribe(self, *, deltas: bool = False) -> MemoryObjectReceiveStream[Event]:
        """A stream of the events (with ``LLMDelta`` ones when ``deltas``)."""
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=math.inf)
        self._streams.append(send)
        if deltas:
            self._delta_streams.append(send)
        return receive

    def emit(self, event: Event) -> None:
        if isinstance(event, LLMDelta):
            self._emit_delta(event)
            return
        if not self.active:
            return
        event = scrub_model(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:
                self.errors.append(exc)
                self._listeners.remove(listener)
                if listener in self._delta_listeners:
                    self._delta_listeners.remove(listener)
        for stream in self._streams:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                stream.send_nowait(event)

    def _emit_delta(self, event: LLMDelta) -> None:
        for listener in list(self._delta_listeners):
            try:
                listener(event)
            except Exception as exc:
                self.errors.append(exc)
                self._delta_listeners.remove(listener)
                if listener in self._listeners:
                    self._listeners.remove(listener)
        for stream in self._delta_streams:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                stream.send_nowait(event)

    def close(self) -> None:
        for stream in self._streams:
            stream.close()
        self._streams.clear()
        self._delta_streams.clear()
