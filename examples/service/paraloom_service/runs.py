"""Many concurrent runs in one process: start, follow, cancel, look up.

A :class:`RunManager` owns one task group (enter it with ``async with``, e.g. from the
web app's lifespan); each run is an ``Orchestrator.start(...)`` inside it, with its own
budget, model selector and event log. Nothing is global: two managers in one process
know nothing of each other. Finished runs stay in memory up to ``keep_finished`` (the
oldest are dropped first); with a run store they remain readable from it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from pydantic import JsonValue

from paraloom import ApprovalDecision, Orchestrator, PendingApproval, RunHandle, RunResult
from paraloom.protocols import Event, LLMDelta
from paraloom.protocols.actions import new_id
from paraloom.runtime import Budget, ModelSelector, ScopedBudget, ScopeLedger
from paraloom.store import RunStore

__all__ = ["RunManager", "RunRecord", "UnknownNameError"]


class UnknownNameError(LookupError):
    """A request named a workflow or router the service does not have."""

    def __init__(self, what: str, name: str, known: list[str]) -> None:
        super().__init__(f"unknown {what} {name!r}; known: {', '.join(sorted(known)) or 'none'}")


@dataclass(eq=False)
class RunRecord:
    """One run as the service sees it: its events so far and, once done, its result."""

    run_id: str
    workflow: str
    events: list[Event] = field(default_factory=list)
    result: RunResult | None = None
    error: str | None = None
    done: bool = False
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _handle: RunHandle | None = None
    _cancel_requested: bool = False

    def _append(self, event: Event) -> None:
        self.events.append(event)
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def cancel(self) -> bool:
        """Ask the run to stop; False if it had already finished."""
        if self.done:
            return False
        self._cancel_requested = True
        if self._handle is not None:
            self._handle.cancel()
        return True

    def pending(self) -> list[PendingApproval]:
        """The approvals (and ask_human questions) the run waits for now."""
        return self._handle.pending() if self._handle is not None else []

    def decide(self, key: str, decision: ApprovalDecision) -> None:
        """Answer pending approval ``key``."""
        if self._handle is not None:
            self._handle.approvals.decide(key, decision)

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """``(index, event)`` from index ``after`` on: the past ones, then live ones as
        they come, ending when the run has finished."""
        i = max(0, after)
        while True:
            changed = self._changed
            while i < len(self.events):
                yield i, self.events[i]
                i += 1
            if self.done:
                return
            await changed.wait()


class RunManager:
    """Starts and tracks runs of the given workflows (name → Orchestrator)."""

    def __init__(
        self,
        workflows: Mapping[str, Orchestrator],
        *,
        selectors: Mapping[str, ModelSelector] | None = None,
        store: RunStore | None = None,
        keep_finished: int = 1000,
        ledger: ScopeLedger | None = None,
        scopes: Sequence[str] = (),
    ) -> None:
        if not workflows:
            raise ValueError("RunManager needs at least one workflow")
        self.workflows = dict(workflows)
        self.selectors = dict(selectors or {})
        self.store = store
        self.keep_finished = keep_finished
        self.ledger = ledger
        """Shared budget scopes (e.g. the tenant's), enclosing every run's budget: set
        before the first run, e.g. from the app's lifespan once the ledger is open."""
        self.scopes = tuple(scopes)
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> RunManager:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        for record in list(self._runs.values()):
            record.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            if self.store is not None:
                await self.store.aflush()

    def get(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def list(self) -> list[RunRecord]:
        return list(self._runs.values())

    def start(
        self,
        task: JsonValue,
        *,
        workflow: str | None = None,
        budget_usd: Decimal | None = None,
        router: str | None = None,
        stream: bool = False,
    ) -> RunRecord:
        """Start a run in the background and return its record at once. ``stream``: its
        events include the ``LLMDelta`` events of its (then streaming) LLM calls."""
        if self._tg is None:
            raise RuntimeError("the RunManager is not running (use `async with manager:`)")
        name = workflow or next(iter(self.workflows))
        if name not in self.workflows:
            raise UnknownNameError("workflow", name, list(self.workflows))
        selector = None
        if router is not None:
            if router not in self.selectors:
                raise UnknownNameError("router", router, list(self.selectors))
            selector = self.selectors[router]
        record = RunRecord(run_id=new_id("run_"), workflow=name)
        self._runs[record.run_id] = record
        self._tg.start_soon(
            self._drive,
            record,
            self.workflows[name],
            task,
            budget_usd,
            selector,
            stream,
            name=f"run:{record.run_id}",
        )
        return record

    async def _drive(
        self,
        record: RunRecord,
        orchestrator: Orchestrator,
        task: JsonValue,
        budget_usd: Decimal | None,
        selector: ModelSelector | None,
        stream: bool = False,
    ) -> None:
        budget: Budget | Decimal | None = budget_usd
        if self.ledger is not None and self.scopes:
            limit = budget_usd if budget_usd is not None else orchestrator.budget_usd
            budget = ScopedBudget(self.ledger, self.scopes, limit)
        try:
            async with orchestrator.start(
                task,
                budget=budget,
                run_id=record.run_id,
                model_selector=selector,
                deltas=stream,
            ) as handle:
                record._handle = handle
                if record._cancel_requested:
                    handle.cancel()
                async for event in handle.events():
                    if self.store is not None and not isinstance(event, LLMDelta):
                        self.store.record(event)
                    record._append(event)
                record.result = await handle.result()
        except Exception as exc:  # an engine bug must not take the other runs down
            record.error = f"{type(exc).__name__}: {exc}"
        finally:
            record.done = True
            record._handle = None
            record._wake()
            self._forget_old()

    def _forget_old(self) -> None:
        finished = [rid for rid, r in self._runs.items() if r.done]
        for rid in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._runs[rid]
