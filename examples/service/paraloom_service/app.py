"""A FastAPI app serving paraloom runs over HTTP.

    POST   /runs                 start a run: {"task": ..., "workflow"?, "budget_usd"?, "router"?,
                                 "stream"?}
    GET    /runs                 runs in memory (newest last)
    GET    /runs/{id}            status and cost (memory, else the run store)
    GET    /runs/{id}/events     the run's events as server-sent events, live until it ends
                                 (resume with the ``Last-Event-ID`` header or ``?after=N``)
    GET    /runs/{id}/result     200 with the result once finished, 202 while running
    DELETE /runs/{id}            cancel a running run (409 if it has already finished)
    GET    /runs/{id}/pending    approvals (and ask_human questions) the run waits for
    POST   /runs/{id}/approvals/{key}   answer one: {"approve": true|false, "reason"?,
                                 "by"?, "arguments"? (edits), "answer"? (ask_human)}
    GET    /ui?run={id}          a page showing the run's branches, each in its own box
                                 with its streamed text, live (start the run with
                                 ``"stream": true``)

With ``"stream": true`` the run's LLM calls stream and its event stream also carries
``llm_delta`` events: pieces of each model call's text (and tool-call arguments), each
with its ``subtask_id``, ``llm_call_id`` and ``seq``; a client rebuilds every running
branch's text by subtask id (see ``paraloom.TextSoFar``). Deltas are not kept in the
run store.

Runs that are no longer in memory (service restarted, or evicted) are answered from the
run store when one is configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom import ApprovalDecision, Orchestrator, PendingApproval
from paraloom.protocols import Event
from paraloom.runtime import ModelSelector
from paraloom.store import RunNotFoundError, RunStore, open_ledger
from paraloom_service.runs import RunManager, RunRecord, UnknownNameError

__all__ = ["Decide", "RunStatusView", "StartRun", "create_app", "sse_frame"]


class Decide(BaseModel):
    """The body of ``POST /runs/{id}/approvals/{key}``."""

    model_config = ConfigDict(extra="forbid")

    approve: bool = True
    reason: str | None = None
    by: str | None = None
    arguments: dict[str, JsonValue] | None = Field(
        default=None, description="Edited arguments (approving only)."
    )
    answer: str | None = Field(default=None, description="The answer to an ask_human question.")

    def decision(self) -> ApprovalDecision:
        edits = dict(self.arguments or {})
        if self.answer is not None:
            edits["answer"] = self.answer
        return ApprovalDecision(
            outcome="approved" if self.approve else "rejected",
            by=self.by,
            reason=self.reason,
            arguments=edits or None,
        )


_PAGE = Path(__file__).with_name("static") / "runs.html"


class StartRun(BaseModel):
    """The body of ``POST /runs``."""

    model_config = ConfigDict(extra="forbid")

    task: JsonValue = Field(default=None, description="The run's input.")
    workflow: str | None = Field(default=None, description="Default: the first workflow.")
    budget_usd: Decimal | None = Field(
        default=None, ge=0, description="Dollar limit of this run (default: the workflow's)."
    )
    router: str | None = Field(default=None, description="A model selector the service has.")
    stream: bool = Field(
        default=False, description="Stream LLM text: llm_delta events in /runs/{id}/events."
    )


class RunStatusView(BaseModel):
    run_id: str
    workflow: str
    status: str
    events: int | None = None
    cost_usd: Decimal | None = None
    error: str | None = None
    source: str = Field(description="'memory' or 'store'.")


def sse_frame(index: int, event: Event) -> str:
    """One server-sent event: ``id`` is the event's index in the run, ``event`` its type."""
    return f"id: {index}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


def _status(record: RunRecord) -> RunStatusView:
    result = record.result
    status = "running"
    if record.done:
        status = result.status if result is not None else "error"
    return RunStatusView(
        run_id=record.run_id,
        workflow=record.workflow,
        status=status,
        events=len(record.events),
        cost_usd=None if result is None else result.cost_usd,
        error=record.error if result is None else result.error,
        source="memory",
    )


def create_app(
    workflows: Mapping[str, Orchestrator],
    *,
    selectors: Mapping[str, ModelSelector] | None = None,
    store: RunStore | None = None,
    max_budget_usd: Decimal | None = None,
    keep_finished: int = 1000,
    ledger: str | None = None,
    scopes: Sequence[str] = (),
) -> FastAPI:
    """The app for ``workflows`` (name → Orchestrator). ``selectors`` are the routers a
    request may pick by name; ``max_budget_usd`` caps what a request may ask for.
    ``scopes`` (e.g. ``["tenant:acme"]``) in the ledger at ``ledger`` (a SQLite file or
    ``postgresql://`` URL) enclose every run's budget: several instances of the service
    sharing one ledger never spend past a scope's limit together."""
    manager = RunManager(
        workflows, selectors=selectors, store=store, keep_finished=keep_finished, scopes=scopes
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if ledger is not None and scopes:
                manager.ledger = await stack.enter_async_context(
                    open_ledger(ledger, label="paraloom_service")
                )
            await stack.enter_async_context(manager)
            yield

    app = FastAPI(title="paraloom runs", lifespan=lifespan)
    app.state.manager = manager

    def known(run_id: str) -> RunRecord:
        record = manager.get(run_id)
        if record is None:
            raise HTTPException(404, f"no run {run_id!r} in memory")
        return record

    async def stored(run_id: str) -> Any:
        if store is None:
            raise HTTPException(404, f"no run {run_id!r}")
        try:
            return await store.aget_run(run_id)
        except RunNotFoundError:
            raise HTTPException(404, f"no run {run_id!r}") from None

    @app.post("/runs", status_code=202)
    async def start_run(body: StartRun) -> RunStatusView:
        if (
            max_budget_usd is not None
            and body.budget_usd is not None
            and body.budget_usd > max_budget_usd
        ):
            raise HTTPException(
                400, f"budget_usd: {body.budget_usd} is above this service's limit {max_budget_usd}"
            )
        try:
            record = manager.start(
                body.task,
                workflow=body.workflow,
                budget_usd=body.budget_usd,
                router=body.router,
                stream=body.stream,
            )
        except UnknownNameError as exc:
            field = "workflow" if "workflow" in str(exc) else "router"
            raise HTTPException(400, f"{field}: {exc}") from None
        return _status(record)

    @app.get("/runs")
    async def list_runs() -> list[RunStatusView]:
        return [_status(r) for r in manager.list()]

    @app.get("/runs/{run_id}")
    async def get_run(run_id: str) -> RunStatusView:
        record = manager.get(run_id)
        if record is not None:
            return _status(record)
        summary = await stored(run_id)
        return RunStatusView(
            run_id=summary.run_id,
            workflow=summary.workflow,
            status=summary.status,
            cost_usd=summary.cost_usd,
            error=summary.error,
            source="store",
        )

    @app.get("/runs/{run_id}/result", response_model=None)
    async def get_result(run_id: str) -> JSONResponse:
        record = manager.get(run_id)
        if record is None:
            summary = await stored(run_id)
            if not summary.finished:
                return JSONResponse(_summary_json(summary), status_code=202)
            return JSONResponse(_summary_json(summary))
        if not record.done:
            return JSONResponse(_status(record).model_dump(mode="json"), status_code=202)
        if record.result is None:
            raise HTTPException(500, f"run {run_id!r} ended without a result: {record.error}")
        return JSONResponse(record.result.model_dump(mode="json"))

    @app.get("/runs/{run_id}/events")
    async def get_events(
        run_id: str,
        after: Annotated[int | None, Query(ge=0, description="First event index to send.")] = None,
        last_event_id: Annotated[int | None, Header(ge=0)] = None,
    ) -> StreamingResponse:
        start = (
            after if after is not None else (last_event_id + 1 if last_event_id is not None else 0)
        )
        record = manager.get(run_id)
        if record is not None:
            frames = _live_frames(record, start)
        else:
            if store is None:
                raise HTTPException(404, f"no run {run_id!r}")
            events = await anyio.to_thread.run_sync(store.events, run_id)
            if not events:
                raise HTTPException(404, f"no run {run_id!r}")
            frames = _stored_frames(events, start)
        return StreamingResponse(
            frames,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/runs/{run_id}/pending")
    async def get_pending(run_id: str) -> list[PendingApproval]:
        record = manager.get(run_id)
        if record is not None:
            return record.pending()
        summary = await stored(run_id)
        return [
            PendingApproval(
                key=a.key,
                run_id=summary.run_id,
                round=a.round or 0,
                subtask_id=a.subtask_id,
                call_id=a.call_id,
                action=a.action or "",
                arguments=a.arguments if isinstance(a.arguments, dict) else {},
                requested_at=a.requested_at or 0.0,
                projection=a.projection if isinstance(a.projection, dict) else None,
            )
            for a in summary.pending_approvals
        ]

    @app.post("/runs/{run_id}/approvals/{key}")
    async def decide(run_id: str, key: str, body: Decide) -> ApprovalDecision:
        if not body.approve and (body.arguments or body.answer is not None):
            raise HTTPException(400, "arguments/answer: only when approving")
        decision = body.decision()
        record = manager.get(run_id)
        if record is not None and not record.done:
            if key not in {p.key for p in record.pending()}:
                raise HTTPException(404, f"run {run_id!r} waits for no approval {key!r}")
            record.decide(key, decision)
            return decision
        if store is None:
            raise HTTPException(409 if record is not None else 404, f"run {run_id!r} is not live")
        try:  # a run left waiting: recorded, taken when it is resumed
            await anyio.to_thread.run_sync(store.record_decision, run_id, key, decision)
        except RunNotFoundError:
            raise HTTPException(404, f"no run {run_id!r}") from None
        except KeyError:
            raise HTTPException(404, f"run {run_id!r} has no approval {key!r}") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return decision

    @app.get("/ui", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(_PAGE.read_text(encoding="utf-8"))

    @app.delete("/runs/{run_id}", status_code=202)
    async def cancel_run(run_id: str) -> RunStatusView:
        record = known(run_id)
        if not record.cancel():
            raise HTTPException(409, f"run {run_id!r} has already finished")
        return _status(record)

    return app


async def _live_frames(record: RunRecord, start: int) -> AsyncIterator[str]:
    async for index, event in record.follow(start):
        yield sse_frame(index, event)


async def _stored_frames(events: list[Event], start: int) -> AsyncIterator[str]:
    for index in range(start, len(events)):
        yield sse_frame(index, events[index])


def _summary_json(summary: Any) -> dict[str, Any]:
    data: dict[str, Any] = summary.model_dump(
        mode="json",
        include={"run_id", "workflow", "status", "output", "error", "cost_usd", "budget_usd"},
    )
    data["source"] = "store"
    return data
