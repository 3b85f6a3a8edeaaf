"""Rebuild "the text so far" of every subtask from a run's ``LLMDelta`` events."""

from __future__ import annotations

from dataclasses import dataclass, field

from paraloom.protocols.events import Event, LLMDelta

__all__ = ["TextSoFar"]


@dataclass
class _Call:
    subtask_id: str | None
    text: list[str] = field(default_factory=list)
    last_seq: int = 0


class TextSoFar:
    """Feed it every event (``observe``, usable as a delta listener with
    :func:`~paraloom.orchestrator.events.delta_listener`); ask ``text(subtask_id)``.

    A subtask's text is the text of its latest model call (an agent's current turn;
    its final answer once the subtask is done); ``turns(subtask_id)`` has every call's.
    A ``discarded`` delta (a broken stream) voids its call's text so far. Deltas of one
    call arriving out of ``seq`` order (they do not, from one run) are ignored."""

    wants_deltas = True

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self._by_subtask: dict[str | None, list[str]] = {}

    def __call__(self, event: Event) -> None:
        self.observe(event)

    def observe(self, event: Event) -> None:
        if isinstance(event, LLMDelta):
            call = self._calls.get(event.llm_call_id)
            if call is None:
                call = self._calls[event.llm_call_id] = _Call(event.subtask_id)
                self._by_subtask.setdefault(event.subtask_id, []).append(event.llm_call_id)
            if event.seq <= call.last_seq:
                return
            call.last_seq = event.seq
            if event.kind == "text":
                call.text.append(event.text)
            elif event.kind == "discarded":
                call.text.clear()

    def text(self, subtask_id: str | None) -> str:
        """The text of the subtask's latest streamed model call ('' if none)."""
        calls = self._by_subtask.get(subtask_id)
        if not calls:
            return ""
        return "".join(self._calls[calls[-1]].text)

    def turns(self, subtask_id: str | None) -> list[str]:
        return ["".join(self._calls[c].text) for c in self._by_subtask.get(subtask_id, ())]

    @property
    def subtasks(self) -> list[str | None]:
        return list(self._by_subtask)

    def texts(self) -> dict[str | None, str]:
        return {s: self.text(s) for s in self._by_subtask}
