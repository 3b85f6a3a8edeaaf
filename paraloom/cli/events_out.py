"""``paraloom run --events jsonl``: every event of the run, LLM deltas included, as one
JSON object per line on stdout (for scripts). Each line is an event's JSON (its
``type`` says which); the last is ``run_finished`` with the output, status and cost."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from paraloom.orchestrator.events import Listener, delta_listener, wants_deltas
from paraloom.protocols.events import Event, LLMDelta

__all__ = ["EVENT_FORMATS", "JsonLinesWriter", "fan_out_listener"]

EVENT_FORMATS = ("jsonl",)


class JsonLinesWriter:
    """A delta listener writing each event as a JSON line (flushed: scripts read live)."""

    wants_deltas = True

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        self.stream.write(event.model_dump_json() + "\n")
        self.stream.flush()


def fan_out_listener(listeners: list[Listener], broken: list[str]) -> Listener:
    """One listener calling ``listeners`` in turn (a faulty one is dropped, its error
    kept in ``broken``); ``LLMDelta`` events only go to the ones that want deltas, and
    the fan-out wants deltas only if one of them does."""

    def call(event: Event) -> None:
        deltas = isinstance(event, LLMDelta)
        for listener in list(listeners):
            if deltas and not wants_deltas(listener):
                continue
            try:
                listener(event)
            except Exception as exc:
                listeners.remove(listener)
                broken.append(f"{type(exc).__name__}: {exc}")

    out: Callable[[Event], None] = call
    return delta_listener(out) if any(wants_deltas(f) for f in listeners) else out
