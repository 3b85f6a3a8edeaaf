"""``paraloom run --events jsonl``: every event of the run, LLM deltas included, as one
JSON object per line on stdout (for scripts). Each line is an event's JSON (its
``type`` says which); the last is ``run_finished`` with the output, status and cost."""

from __future__ import annotations

import sys
from typing import TextIO

from paraloom.orchestrator.events import Listener, scrubs_secrets, wants_deltas
from paraloom.protocols.events import Event, LLMDelta
from paraloom.runtime.redact import scrub_model

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
    the fan-out wants deltas only if one of them does. It gets events unscrubbed and
    scrubs each at most once, for the listeners that do not scrub what they write
    (the CLI's progress view and JSON lines; the store and tracing scrub their own)."""
    return _FanOut(listeners, broken)


class _FanOut:
    scrubs_secrets = True

    def __init__(self, listeners: list[Listener], broken: list[str]) -> None:
        self.listeners = listeners
        self.broken = broken
        self.wants_deltas = any(wants_deltas(f) for f in listeners)

    def __call__(self, event: Event) -> None:
        deltas = isinstance(event, LLMDelta)  # scrubbed where they are made
        clean: Event | None = event if deltas else None
        for listener in list(self.listeners):
            if deltas and not wants_deltas(listener):
                continue
            if scrubs_secrets(listener):
                out = event
            else:
                if clean is None:
                    clean = scrub_model(event)
                out = clean
            try:
                listener(out)
            except Exception as exc:
                self.listeners.remove(listener)
                self.broken.append(f"{type(exc).__name__}: {exc}")
