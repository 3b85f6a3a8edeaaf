"""A run started in the background (:meth:`Orchestrator.start`): its events, result,
approvals and cancellation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial

import anyio
from pydantic import JsonValue

from paraloom.orchestrator.result import RunResult
from paraloom.orchestrator.stream import EventStream
from paraloom.protocols.approval import ApprovalDecision, PendingApproval
from paraloom.protocols.events import Event
from paraloom.runtime.approval import ApprovalGate

__all__ = ["RunHandle"]


class RunHandle:
    """A run started with :meth:`Orchestrator.start`."""

    def __init__(
        self,
        run_id: str,
        stream: EventStream,
        approvals: ApprovalGate | None = None,
    ) -> None:
        self.run_id = run_id
        self.approvals = approvals or ApprovalGate()
        self._stream = stream
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._result: RunResult | None = None

    async def events(self) -> AsyncIterator[Event]:
        """Every event of the run, in order, ending after ``RunFinished`` (with
        ``overflow="drop_oldest"``, an ``EventsDropped`` marker where events were
        dropped). Leaving the iteration early stops the buffering."""
        try:
            async for event in self._stream:
                yield event
        finally:
            self._stream.detach()

    @property
    def backlog(self) -> int:
        """Events of ``events()`` queued unread now."""
        return self._stream.backlog

    @property
    def max_backlog_seen(self) -> int:
        """The largest backlog of ``events()`` so far."""
        return self._stream.max_seen

    def _set_result(self, result: RunResult) -> None:
        self._result = result

    async def result(self) -> RunResult:
        """The run's result once it ends (status ``cancelled`` with the partial results
        if it was cancelled). While it waits, the run does not wait for the
        ``events()`` consumer (its events queue unbounded meanwhile)."""
        self._stream.unbound(True)
        try:
            await self._done.wait()
        finally:
            self._stream.unbound(False)
        if self._result is None:
            raise RuntimeError("the run ended before producing a result")
        return self._result

    def pending(self) -> list[PendingApproval]:
        """The approvals the run waits for now (their keys are subtask ids)."""
        return self.approvals.pending()

    async def wait_pending(self, count: int = 1) -> list[PendingApproval]:
        """Wait until at least ``count`` approvals are pending, or the run has ended;
        return the pending ones. While it waits, the run does not wait for the
        ``events()`` consumer."""
        self._stream.unbound(True)
        try:
            async with anyio.create_task_group() as tg:

                async def until(wait: Callable[[], Awaitable[object]]) -> None:
                    await wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(until, partial(self.approvals.wait_pending, count))
                tg.start_soon(until, self._done.wait)
        finally:
            self._stream.unbound(False)
        return self.approvals.pending()

    async def approve(
        self,
        key: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        arguments: Mapping[str, JsonValue] | None = None,
    ) -> None:
        """Approve pending request ``key`` (a subtask id), optionally with edited
        ``arguments`` (merged over the call's own)."""
        edited = dict(arguments) if arguments is not None else None
        decision = ApprovalDecision(outcome="approved", by=by, reason=reason, arguments=edited)
        self.approvals.decide(key, decision)
        await anyio.lowlevel.checkpoint()

    async def answer(self, key: str, text: str, *, by: str | None = None) -> None:
        """Answer an ``ask_human`` question waiting as ``key``."""
        decision = ApprovalDecision(outcome="approved", by=by, arguments={"answer": text})
        self.approvals.decide(key, decision)
        await anyio.lowlevel.checkpoint()

    async def reject(self, key: str, *, reason: str, by: str | None = None) -> None:
        """Reject request ``key``: the subtask and its dependents are skipped."""
        self.approvals.decide(key, ApprovalDecision(outcome="rejected", by=by, reason=reason))
        await anyio.lowlevel.checkpoint()

    def cancel(self) -> None:
        """Cancel the run (not the caller): its events end with a cancelled RunFinished."""
        self._scope.cancel()

    @property
    def done(self) -> bool:
        return self._done.is_set()
