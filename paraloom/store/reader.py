"""Read runs back: listings, full summaries, the raw events and the resume state."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

from pydantic import JsonValue, TypeAdapter, ValidationError

from paraloom.orchestrator.resume import ResumeState
from paraloom.protocols.actions import ActionKind, ActionResult, TokenUsage
from paraloom.protocols.events import Event
from paraloom.protocols.plan import FinalAnswer, Plan
from paraloom.store.models import (
    LLMCallRecord,
    RoundRecord,
    RunInfo,
    RunNotFoundError,
    RunSummary,
    SubtaskRecord,
)
from paraloom.store.schema import StoreError

__all__ = ["get_run", "list_runs", "read_events", "resolve_run_id", "resume_state"]

_EVENT = TypeAdapter[Event](Event)

_INFO_SQL = """
SELECT r.run_id, r.workflow, r.status, r.source, r.parent_run_id, r.cost_usd, r.started_at,
       COALESCE((SELECT e.ts FROM events e WHERE e.run_id = r.run_id ORDER BY e.id DESC
                 LIMIT 1), r.updated_at),
       r.ended_at, r.sessions,
       (SELECT COUNT(*) FROM subtasks s WHERE s.run_id = r.run_id),
       (SELECT COUNT(*) FROM subtasks s WHERE s.run_id = r.run_id AND s.status = 'ok'),
       (SELECT COUNT(*) FROM llm_calls l WHERE l.run_id = r.run_id)
FROM runs r
"""


def _loads(text: str | None) -> JsonValue:
    return None if text is None else json.loads(text)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _info(row: tuple[Any, ...]) -> RunInfo:
    return RunInfo(
        run_id=row[0],
        workflow=row[1],
        status=row[2],
        source=row[3],
        parent_run_id=row[4],
        cost_usd=_decimal(row[5]),
        started_at=row[6],
        updated_at=row[7],
        ended_at=row[8],
        sessions=row[9],
        subtasks_total=row[10],
        subtasks_ok=row[11],
        llm_calls=row[12],
    )


def list_runs(
    conn: sqlite3.Connection,
    *,
    limit: int | None = 50,
    status: str | None = None,
    workflow: str | None = None,
    include_children: bool = False,
) -> list[RunInfo]:
    """Newest first. Nested workflow runs are left out unless ``include_children``."""
    where: list[str] = []
    params: list[Any] = []
    if not include_children:
        where.append("r.parent_call_id IS NULL")
    if status is not None:
        where.append("r.status = ?")
        params.append(status)
    if workflow is not None:
        where.append("r.workflow = ?")
        params.append(workflow)
    sql = _INFO_SQL + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY r.started_at DESC, r.run_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_info(row) for row in conn.execute(sql, params).fetchall()]


def resolve_run_id(conn: sqlite3.Connection, run_id: str) -> str:
    """The full id of ``run_id``, which may be a unique prefix of it."""
    if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
        return run_id
    escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id LIMIT 6",
        (escaped + "%",),
    ).fetchall()
    if len(rows) == 1:
        return str(rows[0][0])
    if not rows:
        raise RunNotFoundError(f"no run {run_id!r} in the store")
    ids = ", ".join(r[0] for r in rows[:5])
    raise RunNotFoundError(f"run id prefix {run_id!r} is ambiguous: {ids}…")


def get_run(conn: sqlite3.Connection, run_id: str) -> RunSummary:
    run_id = resolve_run_id(conn, run_id)
    row = conn.execute(_INFO_SQL + " WHERE r.run_id = ?", (run_id,)).fetchone()
    info = _info(row)
    extra = conn.execute(
        "SELECT task_json, metadata_json, parent_call_id, budget_usd, output_json, error, score"
        " FROM runs WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    calls = _llm_calls(conn, run_id)
    usage: dict[str, TokenUsage] = {}
    for call in calls:
        u = TokenUsage(
            input_tokens=call.input_tokens or 0,
            output_tokens=call.output_tokens or 0,
            calls=1,
        )
        usage[call.model] = usage[call.model] + u if call.model in usage else u
    children = conn.execute(
        "SELECT run_id FROM runs WHERE parent_run_id = ? ORDER BY started_at", (run_id,)
    ).fetchall()
    metadata = _loads(extra[1])
    return RunSummary(
        **info.model_dump(),
        task=_loads(extra[0]),
        metadata=metadata if isinstance(metadata, dict) else {},
        parent_call_id=extra[2],
        budget_usd=_decimal(extra[3]),
        output=_loads(extra[4]),
        error=extra[5],
        score=extra[6],
        rounds=tuple(_rounds(conn, run_id)),
        subtasks=tuple(_subtasks(conn, run_id)),
        llm_call_records=tuple(calls),
        usage=usage,
        llm_cost_usd=sum((c.cost_usd or Decimal(0) for c in calls), Decimal(0)),
        child_run_ids=tuple(r[0] for r in children),
    )


def _rounds(conn: sqlite3.Connection, run_id: str) -> list[RoundRecord]:
    rows = conn.execute(
        "SELECT round, planner, plan_json, has_final, final_output_json, error, replayed,"
        " started_at, finished_at FROM rounds WHERE run_id = ? ORDER BY round",
        (run_id,),
    ).fetchall()
    return [
        RoundRecord(
            round=r[0],
            planner=r[1],
            plan=None if r[2] is None else Plan.model_validate_json(r[2]),
            final=bool(r[3]),
            final_output=_loads(r[4]),
            error=r[5],
            replayed=bool(r[6]),
            started_at=r[7],
            finished_at=r[8],
        )
        for r in rows
    ]


def _subtasks(conn: sqlite3.Connection, run_id: str) -> list[SubtaskRecord]:
    rows = conn.execute(
        "SELECT subtask_id, round, action, kind, depends_on_json, status, result_json, reason,"
        " executions, retries, reused, started_at, finished_at FROM subtasks"
        " WHERE run_id = ? ORDER BY round, COALESCE(started_at, finished_at), subtask_id",
        (run_id,),
    ).fetchall()
    return [
        SubtaskRecord(
            subtask_id=r[0],
            round=r[1],
            action=r[2],
            kind=None if r[3] is None else ActionKind(r[3]),
            depends_on=tuple(json.loads(r[4])),
            status=r[5],
            result=None if r[6] is None else ActionResult.model_validate_json(r[6]),
            reason=r[7],
            executions=r[8],
            retries=r[9],
            reused=bool(r[10]),
            started_at=r[11],
            finished_at=r[12],
        )
        for r in rows
    ]


def _llm_calls(conn: sqlite3.Connection, run_id: str) -> list[LLMCallRecord]:
    rows = conn.execute(
        "SELECT llm_call_id, parent_call_id, round, subtask_id, model, provider, step_kind,"
        " routing_json, input_tokens, output_tokens, cost_usd, latency_s, finish_reason, error,"
        " budget_left_usd, started_at, finished_at FROM llm_calls WHERE run_id = ?"
        " ORDER BY started_at, rowid",
        (run_id,),
    ).fetchall()
    out: list[LLMCallRecord] = []
    for r in rows:
        routing = _loads(r[7])
        out.append(
            LLMCallRecord(
                llm_call_id=r[0],
                parent_call_id=r[1],
                round=r[2],
                subtask_id=r[3],
                model=r[4],
                provider=r[5],
                step_kind=r[6],
                routing=routing if isinstance(routing, dict) else None,
                input_tokens=r[8],
                output_tokens=r[9],
                cost_usd=_decimal(r[10]),
                latency_s=r[11],
                finish_reason=r[12],
                error=r[13],
                budget_left_usd=_decimal(r[14]),
                started_at=r[15],
                finished_at=r[16],
            )
        )
    return out


def read_events(conn: sqlite3.Connection, run_id: str) -> list[Event]:
    """The run's events in the order they were written."""
    run_id = resolve_run_id(conn, run_id)
    rows = conn.execute(
        "SELECT id, data_json FROM events WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    out: list[Event] = []
    for row_id, data in rows:
        try:
            out.append(_EVENT.validate_json(data))
        except ValidationError as exc:
            raise StoreError(
                f"event #{row_id} of run {run_id} is not a valid event: {exc}"
            ) from exc
    return out


def resume_state(conn: sqlite3.Connection, run_id: str) -> ResumeState:
    """The planner decisions of rounds 1..k (contiguous, ending at the first final
    answer; a round whose planner failed or never answered is asked again) and the
    ``ok`` results of the run's subtasks.

    A final answer is stored with its references already resolved and is replayed as
    ``FinalAnswer(output=resolved)``; resolving it again is a no-op unless a subtask's
    output itself contains a ``{"from": …}`` object."""
    run_id = resolve_run_id(conn, run_id)
    decisions: dict[int, Plan | FinalAnswer] = {}
    rows = conn.execute(
        "SELECT round, plan_json, has_final, final_output_json FROM rounds"
        " WHERE run_id = ? ORDER BY round",
        (run_id,),
    ).fetchall()
    for round_no, plan_json, has_final, final_json in rows:
        if round_no != len(decisions) + 1:
            break
        if plan_json is not None:
            decisions[round_no] = Plan.model_validate_json(plan_json)
        elif has_final:
            decisions[round_no] = FinalAnswer(output=_loads(final_json))
            break
        else:
            break
    results: dict[str, ActionResult] = {}
    for sid, result_json in conn.execute(
        "SELECT subtask_id, result_json FROM subtasks"
        " WHERE run_id = ? AND status = 'ok' AND result_json IS NOT NULL",
        (run_id,),
    ).fetchall():
        results[sid] = ActionResult.model_validate_json(result_json)
    return ResumeState(run_id=run_id, decisions=decisions, results=results)
