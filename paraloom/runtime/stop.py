"""A graceful stop: finish what is running, start nothing new, keep every result.

The CLI requests one on the first Ctrl-C (a second Ctrl-C cancels the run outright).
Pass it to :meth:`~paraloom.orchestrator.Orchestrator.run` (``stop=``); the run's
context carries it to every round, subtask, retry and nested workflow. Once requested:

- no subtask, retry, fallback or planner round starts (a subtask whose attempt had not
  started yet ends ``cancelled``, so ``resume`` runs it);
- attempts in flight run to their end (their own ``timeout_s`` still holds), and their
  results are kept and recorded like any other;
- the run ends with status ``cancelled`` and the stop's reason as its error.

Plain state, no event loop needed: requesting a stop is safe from a signal handler or
another thread.
"""

from __future__ import annotations

__all__ = ["StopSignal"]


class StopSignal:
    __slots__ = ("_reason",)

    def __init__(self) -> None:
        self._reason: str | None = None

    def request(self, reason: str = "the run was stopped") -> None:
        """Ask for a graceful stop (the first reason given is kept)."""
        if self._reason is None:
            self._reason = reason

    @property
    def requested(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        return self._reason

    def __repr__(self) -> str:
        return f"StopSignal(requested={self.requested})"
