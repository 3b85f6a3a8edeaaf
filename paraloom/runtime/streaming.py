"""How a streaming client under a budgeted call reports what it receives as it arrives.

:func:`~paraloom.models.calling.call_model` installs a :class:`StreamSink` for the call
(a context variable, like :mod:`paraloom.runtime.attempts`). A client that can stream
(the OpenAI-compatible provider) asks :func:`current_sink`: it streams when it is
configured to (``stream=True``) or, by default (``stream=None``), only when the sink
``wants_deltas`` (someone listens to :class:`~paraloom.protocols.events.LLMDelta`
events). Without a listener nothing streams: today's requests, cost and overhead.

The sink turns pieces into ``LLMDelta`` events: text and tool-call arguments, each with
a per-call sequence number. Deltas are scrubbed of registered secrets at the source,
cheaply: a registered secret split over chunks is caught by holding back the end of
the text so far while it could be the beginning of a secret, until more arrives (or
the stream ends); text that cannot begin a secret is sent at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from paraloom.runtime.redact import REDACTOR

__all__ = ["StreamSink", "current_sink", "streaming"]


class _Scrubber:
    """Scrubs one growing text stream; see the module docstring."""

    __slots__ = ("_held", "_secrets")

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = secrets
        self._held = ""

    def _hold(self, text: str) -> int:
        """How many trailing characters of ``text`` may begin a secret (held back)."""
        hold = 0
        for secret in self._secrets:
            window = text[-(len(secret) - 1) :] if len(secret) > 1 else ""
            i = window.find(secret[0])
            while i >= 0 and len(window) - i > hold:
                if secret.startswith(window[i:]):
                    hold = len(window) - i
                    break
                i = window.find(secret[0], i + 1)
        return hold

    def feed(self, piece: str) -> str:
        text = self._held + piece
        if REDACTOR.search(text):
            text = REDACTOR.text(text)
        cut = len(text) - self._hold(text) if self._secrets else len(text)
        self._held = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        text, self._held = self._held, ""
        return REDACTOR.text(text) if text and REDACTOR.search(text) else text


class StreamSink:
    """Receives one call's streamed pieces. ``emit(fields)`` gets the fields of an
    ``LLMDelta`` (``kind``, ``seq``, ``text`` …); it is only called when
    ``wants_deltas``. ``first_token_s``: seconds from :meth:`start` to the first piece."""

    def __init__(self, emit: Callable[[dict[str, Any]], None] | None) -> None:
        self.emit = emit
        self.wants_deltas = emit is not None
        self.started = time.perf_counter()
        self.first_token_s: float | None = None
        self.seq = 0
        self._scrub: dict[int, _Scrubber] = {}
        self._secrets = tuple(REDACTOR.secrets)
        self._text = 0  # characters emitted in this attempt

    def start(self) -> None:
        """A new attempt begins (the request is being sent)."""
        self.started = time.perf_counter()
        self.first_token_s = None
        self._scrub.clear()

    def _first(self) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.started

    def _send(self, key: int, piece: str, fields: dict[str, Any]) -> None:
        if self.emit is None or not piece:
            return
        scrub = self._scrub.get(key)
        if scrub is None:
            scrub = self._scrub[key] = _Scrubber(self._secrets)
        out = scrub.feed(piece)
        if out:
            self.seq += 1
            self.emit({**fields, "seq": self.seq, "text": out})

    def text(self, piece: str) -> None:
        self._first()
        self._send(-1, piece, {"kind": "text"})

    def tool_call(self, index: int, piece: str, *, id: str | None, name: str | None) -> None:
        self._first()
        self._send(
            index,
            piece,
            {"kind": "tool_call", "tool_call_index": index, "tool_call_id": id, "tool_name": name},
        )

    def end(self, *, partial: str | None = None) -> None:
        """The attempt's stream ended: flush what was held back. ``partial`` (the text
        received before the stream broke) marks the attempt's deltas as discarded: a
        ``discarded`` delta reports it, and a retry's text starts afresh."""
        if self.emit is None:
            return
        for key, scrub in list(self._scrub.items()):
            rest = scrub.flush()
            if rest:
                self.seq += 1
                fields: dict[str, Any] = (
                    {"kind": "text"} if key < 0 else {"kind": "tool_call", "tool_call_index": key}
                )
                self.emit({**fields, "seq": self.seq, "text": rest})
        self._scrub.clear()
        if partial is not None:
            self.seq += 1
            self.emit({"kind": "discarded", "seq": self.seq, "text": REDACTOR.text(partial)})


_CURRENT: ContextVar[StreamSink | None] = ContextVar("paraloom_stream", default=None)


def current_sink() -> StreamSink | None:
    return _CURRENT.get()


@contextmanager
def streaming(sink: StreamSink) -> Iterator[None]:
    token = _CURRENT.set(sink)
    try:
        yield
    finally:
        _CURRENT.reset(token)
