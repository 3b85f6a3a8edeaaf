"""Read runs back: listings, full summaries, the raw events and the resume state."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, JsonValue, TypeAdapter, ValidationError

from paraloom.orchestrator.resume import ResumeState
from paraloom.protocols.actions import ActionKind, ActionResult, TokenUsage
from paraloom.protocols.approval import ApprovalDecision
from paraloom.protocols.events import Event
from paraloom.protocols.plan import FinalAnswer, Plan
from paraloom.store.db import Db
from paraloom.store.liveness import Liveness, WriterSession
from paraloom.store.models import (
    ApprovalRecord,
    LLMCallRecord,
    RoundRecord,
    RunInfo,
    RunNotFoundError,
    RunSummary,
    SubtaskRecord,
)
from paraloom.store.schema import StoreError

__all__ = ["get_run", "list_runs", "llm_cost", "read_events", "resolve_run_id", "resume_state"]


@functools.cache
def _event_adapter() -> TypeAdapter[Event]:
    """Built on first use (the union of every event type: milliseconds to build, which
    a run that records without reading back never pays)."""
    return TypeAdapter[Event](Event)


_Column = tuple[str, str, Callable[[Any], Any] | None]
"""(SQL expression, record field, conversion of the stored value or None to keep it)."""

_M = TypeVar("_M", bound=BaseModel)
_I = TypeVar("_I", bound=RunInfo)


def _loads(text: str | None) -> JsonValue:
    return None if text is None else json.loads(text)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert``, except that a NULL stays None."""
    return lambda value: None if value is None else convert(value)


def _json_object(text: str | None) -> JsonValue:
    value = _loads(text)
    return value if isinstance(value, dict) else None


def _record(model: type[_M], columns: tuple[_Column, ...], row: tuple[Any, ...]) -> _M:
    return model(
        **{
            field: value if convert is None else convert(value)
            for (_, field, convert), value in zip(columns, row, strict=True)
        }
    )


def _records(
    conn: Db,
    model: type[_M],
    columns: tuple[_Column, ...],
    rest: str,
    params: Sequence[Any],
) -> list[_M]:
    """One ``model`` per row of ``SELECT <columns> <rest>``."""
    sql = "SELECT " + ", ".join(expr for expr, _, _ in columns) + " " + rest
    rows = conn.execute(sql, params).fetchall()
    return [_record(model, columns, row) for row in rows]


_INFO: tuple[_Column, ...] = (
    ("r.run_id", "run_id", None),
    ("r.workflow", "workflow", None),
    ("r.status", "status", None),
    ("r.source", "source", None),
    ("r.parent_run_id", "parent_run_id", None),
    ("r.cost_usd", "cost_usd", _decimal),
    ("r.started_at", "started_at", None),
    (
        "COALESCE((SELECT e.ts FROM events e WHERE e.run_id = r.run_id ORDER BY e.id DESC"
        " LIMIT 1), r.updated_at)",
        "updated_at",
        None,
    ),
    ("r.ended_at", "ended_at", None),
    ("r.sessions", "sessions", None),
    ("(SELECT COUNT(*) FROM subtasks s WHERE s.run_id = r.run_id)", "subtasks_total", None),
    (
        "(SELECT COUNT(*) FROM subtasks s WHERE s.run_id = r.run_id AND s.status = 'ok')",
        "subtasks_ok",
        None,
    ),
    ("(SELECT COUNT(*) FROM llm_calls l WHERE l.run_id = r.run_id)", "llm_calls", None),
    ("r.warnings_json", "warnings", lambda text: tuple(json.loads(text)) if text else ()),
)

_APPROVAL: tuple[_Column, ...] = (
    ("key", "key", None),
    ("subtask_id", "subtask_id", None),
    ("round", "round", None),
    ("call_id", "call_id", None),
    ("action", "action", None),
    ("arguments_json", "arguments", _loads),
    ("projection_json", "projection", _loads),
    ("requested_at", "requested_at", None),
    ("outcome", "outcome", None),
    ("decided_by", "decided_by", None),
    ("reason", "reason", None),
    ("edited_json", "edited_arguments", _loads),
    ("decided_at", "decided_at", None),
    ("waited_s", "waited_s", None),
    ("offline", "offline", bool),
)

_ROUND: tuple[_Column, ...] = (
    ("round", "round", None),
    ("planner", "planner", None),
    ("plan_json", "plan", _optional(Plan.model_validate_json)),
    ("has_final", "final", bool),
    ("final_output_json", "final_output", _loads),
    ("error", "error", None),
    ("replayed", "replayed", bool),
    ("started_at", "started_at", None),
    ("finished_at", "finished_at", None),
)

_SUBTASK: tuple[_Column, ...] = (
    ("subtask_id", "subtask_id", None),
    ("round", "round", None),
    ("action", "action", None),
    ("kind", "kind", _optional(ActionKind)),
    ("depends_on_json", "depends_on", lambda text: tuple(json.loads(text))),
    ("status", "status", None),
    ("result_json", "result", _optional(ActionResult.model_validate_json)),
    ("reason", "reason", None),
    ("executions", "executions", None),
    ("retries", "retries", None),
    ("reused", "reused", bool),
    ("started_at", "started_at", None),
    ("finished_at", "finished_at", None),
)

_LLM_CALL: tuple[_Column, ...] = (
    ("llm_call_id", "llm_call_id", None),
    ("parent_call_id", "parent_call_id", None),
    ("round", "round", None),
    ("subtask_id", "subtask_id", None),
    ("model", "model", None),
    ("provider", "provider", None),
    ("step_kind", "step_kind", None),
    ("routing_json", "routing", _json_object),
    ("input_tokens", "input_tokens", None),
    ("output_tokens", "output_tokens", None),
    ("cost_usd", "cost_usd", _decimal),
    ("latency_s", "latency_s", None),
    ("finish_reason", "finish_reason", None),
    ("error", "error", None),
    ("budget_left_usd", "budget_left_usd", _decimal),
    ("cached_input_tokens", "cached_input_tokens", None),
    ("reasoning_tokens", "reasoning_tokens", None),
    ("cache_write_tokens", "cache_write_tokens", None),
    ("abandoned", "abandoned", bool),
    ("usage_anomaly", "usage_anomaly", None),
    ("started_at", "started_at", None),
    ("finished_at", "finished_at", None),
)


_LIVE_STATUSES = frozenset({"running", "crashed"})
"""Statuses decided at read time from the stored ``running`` and the writer's liveness."""

Judge = Callable[[WriterSession], Liveness]
"""How a backend tells whether a writer session is alive (its kernel lock, its lease)."""

_WRITER_SQL = (
    "SELECT s.session, s.host, s.pid, s.locked, s.closed_at IS NOT NULL,"
    " s.expires_at - {now}"
    " FROM events e JOIN sessions s ON s.session = e.session"
    " WHERE e.run_id = ? ORDER BY e.id DESC LIMIT 1"
)


def _with_writer(conn: Db, info: _I, judge: Judge | None) -> _I:
    """``info`` with its last writer session's host/pid/liveness; a ``running`` run
    whose writer is dead becomes ``crashed``."""
    row = conn.execute(_WRITER_SQL.format(now=conn.dialect.now_sql), (info.run_id,)).fetchone()
    if row is None:  # no events yet, or written before sessions were tracked
        return info
    writer = WriterSession(
        session=row[0],
        host=row[1],
        pid=row[2],
        locked=bool(row[3]),
        closed=bool(row[4]),
        lease_left=row[5],
    )
    liveness = Liveness.UNKNOWN if judge is None else judge(writer)
    update: dict[str, Any] = {
        "writer_host": writer.host,
        "writer_pid": writer.pid,
        "writer_alive": None if liveness is Liveness.UNKNOWN else liveness is Liveness.ALIVE,
    }
    if info.status == "running" and liveness is Liveness.DEAD:
        update["status"] = "crashed"
    return info.model_copy(update=update)


def list_runs(
    conn: Db,
    *,
    limit: int | None = 50,
    status: str | None = None,
    workflow: str | None = None,
    include_children: bool = False,
    judge: Judge | None = None,
) -> list[RunInfo]:
    """Newest first. Nested workflow runs are left out unless ``include_children``.
    With ``judge``, runs whose recording process is gone are ``crashed``."""
    where: list[str] = []
    params: list[Any] = []
    if not include_children:
        where.append("r.parent_call_id IS NULL")
    if status is not None:
        where.append("r.status = ?")
        params.append("running" if status in _LIVE_STATUSES else status)
    if workflow is not None:
        where.append("r.workflow = ?")
        params.append(workflow)
    rest = "FROM runs r" + (" WHERE " + " AND ".join(where) if where else "")
    rest += " ORDER BY r.started_at DESC, r.run_id"
    post_filter = status in _LIVE_STATUSES
    if limit is not None and not post_filter:
        rest += " LIMIT ?"
        params.append(limit)
    infos = _records(conn, RunInfo, _INFO, rest, params)
    infos = [_with_writer(conn, i, judge) for i in infos]
    if post_filter:
        infos = [i for i in infos if i.status == status][:limit]
    return infos


def resolve_run_id(conn: Db, run_id: str) -> str:
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


def get_run(conn: Db, run_id: str, *, judge: Judge | None = None) -> RunSummary:
    run_id = resolve_run_id(conn, run_id)
    (info,) = _records(conn, RunInfo, _INFO, "FROM runs r WHERE r.run_id = ?", (run_id,))
    info = _with_writer(conn, info, judge)
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
        approvals=tuple(approvals(conn, run_id)),
    )


def approvals(conn: Db, run_id: str) -> list[ApprovalRecord]:
    """The run's approval requests and decisions, oldest request first."""
    return _records(
        conn,
        ApprovalRecord,
        _APPROVAL,
        "FROM approvals WHERE run_id = ? ORDER BY requested_at, key",
        (run_id,),
    )


def _rounds(conn: Db, run_id: str) -> list[RoundRecord]:
    return _records(
        conn, RoundRecord, _ROUND, "FROM rounds WHERE run_id = ? ORDER BY round", (run_id,)
    )


def _subtasks(conn: Db, run_id: str) -> list[SubtaskRecord]:
    return _records(
        conn,
        SubtaskRecord,
        _SUBTASK,
        "FROM subtasks WHERE run_id = ?"
        " ORDER BY round, COALESCE(started_at, finished_at), subtask_id",
        (run_id,),
    )


def _llm_calls(conn: Db, run_id: str) -> list[LLMCallRecord]:
    return _records(
        conn,
        LLMCallRecord,
        _LLM_CALL,
        "FROM llm_calls WHERE run_id = ? ORDER BY started_at, rowid",
        (run_id,),
    )


def read_events(conn: Db, run_id: str) -> list[Event]:
    """The run's events in the order they were written."""
    run_id = resolve_run_id(conn, run_id)
    rows = conn.execute(
        "SELECT id, data_json FROM events WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    out: list[Event] = []
    for row_id, data in rows:
        try:
            out.append(_event_adapter().validate_json(data))
        except ValidationError as exc:
            raise StoreError(
                f"event #{row_id} of run {run_id} is not a valid event: {exc}"
            ) from exc
    return out


def resume_state(conn: Db, run_id: str) -> ResumeState:
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
    # A subtask's decision is taken again when it runs again (it never ran, or did not
    # finish ok); an agent's tool call is asked anew (its call id changes).
    decided: dict[str, ApprovalDecision] = {}
    for a in approvals(conn, run_id):
        decision = a.decision()
        if decision is not None and a.call_id is None and a.key not in results:
            decided[a.key] = decision
    return ResumeState(
        run_id=run_id,
        decisions=decisions,
        results=results,
        spent_usd=llm_cost(conn, run_id),
        approvals=decided,
    )


def llm_cost(conn: Db, run_id: str) -> Decimal:
    """What every recorded LLM call of a run and of its nested runs cost (exact): the
    store's side of the run's one cost tally."""
    rows = conn.execute(
        "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS TEXT) UNION SELECT r.run_id FROM runs r"
        " JOIN tree t ON r.parent_run_id = t.id)"
        " SELECT cost_usd FROM llm_calls WHERE run_id IN (SELECT id FROM tree)"
        " AND cost_usd IS NOT NULL",
        (run_id,),
    ).fetchall()
    return sum((Decimal(str(c)) for (c,) in rows), Decimal(0))
