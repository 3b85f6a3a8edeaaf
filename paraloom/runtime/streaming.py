"""How a streaming client under a budgeted call reports what it receives as it arrives.

:func:`~paraloom.models.calling.call_model` installs a :class:`StreamSink` for the call
(a context variable, like :mod:`paraloom.runtime.attempts`). A client that can stream
(the OpenAI-compatible provider) asks :func:`current_sink`: it streams when it is
configured to (``stream=True``) or, by default (``stream=None``), only when the sink
``wants_deltas`` (someone listens to :class:`~paraloom.protocols.events.LLMDelta`
events). Without a listener nothing streams: today's requests, cost and overhead.

The sink turns pieces into ``LLMDelta`` events: text and tool-call arguments, each with
a per-call sequence number. Deltas are scrubbed at the source over a sliding window:
the end of the text so far is held back from where a registered secret, a secret shape
or a ``password=…`` pair may have begun (``"… sk-ab"``, a JWT's first segment, a private
key block without its END line: :meth:`~paraloom.runtime.redact.Redactor.pending`) until
more text settles it (or the stream ends), so a secret split over chunks never leaves
in pieces, and the deltas put together are exactly the redaction of the whole text.
Text that cannot begin a secret is sent at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from paraloom.runtime.redact import REDACTOR

__all__ = ["StreamSink", "current_sink", "streaming"]


_NEUTRAL = re.compile(r"[^\w:/]")
"""A character after which the redaction of what follows does not depend on what came
before: not a word character (``\\b`` sees the same as at a string's start) nor part of
``://`` (the one look-behind of the secret shapes)."""
_WORDS = re.compile(r"\w\w")
_LONG_RUN = 256
"""A run this long without a neutral character (a base64 blob) is cut anyway."""
_KEPT = 64


def _cut(raw: str, stable: int) -> int:
    """Where ``raw[:stable]`` can be let go of: after its last neutral character; in a
    long run without one, between two word characters where nothing may begin a secret
    out of context either (``\\b`` would see a boundary there); else 0."""
    cut = stable
    while cut > 0 and not _NEUTRAL.match(raw, cut - 1):
        cut -= 1
    if cut or stable < _LONG_RUN:
        return cut
    cut = stable - _KEPT
    if _WORDS.match(raw, cut - 1) and REDACTOR.pending(raw[cut:]) == stable - cut:
        return cut
    return 0


class _Scrubber:
    """Scrubs one growing text stream; see the module docstring.

    Invariant: what was sent is ``REDACTOR.text`` of the stream's text up to the first
    place where a secret may have begun (:meth:`~paraloom.runtime.redact.Redactor.pending`);
    only the text from a cut before that place on is kept (:func:`_cut`)."""

    __slots__ = ("_raw", "_sent")

    def __init__(self) -> None:
        self._raw = ""  # the stream's text from the last cut on
        self._sent = 0  # characters of the redaction of _raw already sent

    def feed(self, piece: str) -> str:
        raw = self._raw + piece
        stable = REDACTOR.pending(raw)
        out = REDACTOR.text(raw[:stable])
        sent = out[self._sent :]
        cut = _cut(raw, stable)
        head = REDACTOR.text(raw[:cut]) if cut else ""
        if cut and head + REDACTOR.text(raw[cut:stable]) == out:
            # raw[:cut] is done with: its redaction is a settled prefix of what was sent
            self._raw, self._sent = raw[cut:], len(out) - len(head)
        else:  # nothing to let go of, or the cut is inside a secret: keep it all
            self._raw, self._sent = raw, len(out)
        return sent

    def flush(self) -> str:
        rest = REDACTOR.text(self._raw)[self._sent :]
        self._raw, self._sent = "", 0
        return rest


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
            scrub = self._scrub[key] = _Scrubber()
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
