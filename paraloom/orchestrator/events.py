"""Fan events out to listeners (callbacks) and to async streams. Every event is scrubbed
of credentials first (:func:`paraloom.runtime.redact.scrub_model`): no listener, stream
or store ever sees a registered secret."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paraloom.protocols.events import Event
from paraloom.runtime.redact import scrub_model

__all__ = ["EventBus", "Listener"]

Listener = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out; listeners must be quick and must not raise (a listener that
    raises is reported once through ``errors`` and then ignored for the rest of the run)."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._streams: list[MemoryObjectSendStream[Event]] = []
        self.errors: list[BaseException] = []

    @property
    def active(self) -> bool:
        return bool(self._listeners or self._streams)

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def subscribe(self) -> MemoryObjectReceiveStream[Event]:
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=math.inf)
        self._streams.append(send)
        return receive

    def emit(self, event: Event) -> None:
        if not self.active:
            return
        event = scrub_model(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:
                self.errors.append(exc)
                self._listeners.remove(listener)
        for stream in self._streams:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                stream.send_nowait(event)

    def close(self) -> None:
        for stream in self._streams:
            stream.close()
        self._streams.clear()
