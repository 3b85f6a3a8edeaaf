"""Export the routing records of stored runs in the router's trajectory format.

One :class:`~paraloom.routing.trajectory.TrajectoryRecord` per *finished* LLM call
(calls that errored or never finished — the process died — are left out: they have no
outcome to learn from). Field sources:

- ``run_id``: the run that made the call (a nested workflow run is its own episode);
  ``task``: the run's workflow name (used for stratified splits);
- ``step_index``: order of the call within its run (by start time);
- ``step_kind``, ``chosen_model``, ``cost_usd``, tokens, ``latency_s``: from the call;
- ``propensity`` and ``candidates``: from the routing decision (``propensity``; the
  candidates — the models that could have been chosen, the support of the propensity —
  are ``info.candidates`` if the router put them there, else ``info.allowed`` (what the
  budget rule and pacing left to a router), else the keys of ``scores``; empty when the
  chosen model is not among them);
- ``context_text``: ``info.context_text`` if the router recorded it; else the captured
  messages (when content capture was on); else what the step was asked to do — the
  calling action's arguments (an agent's task) or, for planner steps, the run's input;
- ``step_success``: 1.0/0.0 from the calling action's final status (agent turns) or from
  whether the planner's round produced a valid plan/answer (plan steps); ``None`` while
  unknown (still running, cancelled);
- ``final_score``: the score set with ``RunStore.set_score`` if any, else 1.0 when the
  run finished ``ok``, 0.0 when it failed, ran out of budget or rounds, ``None`` when it
  was cancelled or never finished;
- ``budget_left_usd``: ``info.budget_left_usd`` if recorded, else the budget left after
  the call plus its cost (exact for sequential calls; approximate with parallel calls).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from paraloom.routing.trajectory import TrajectoryRecord
from paraloom.store.db import Db

__all__ = ["iter_trajectories"]

_FAILED_RUN = frozenset({"failed", "max_rounds", "budget_exhausted"})


def iter_trajectories(conn: Db, run_ids: Iterable[str] | None = None) -> Iterator[TrajectoryRecord]:
    if run_ids is None:
        ids = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started_at, run_id")]
    else:
        ids = list(run_ids)
    for run_id in ids:
        yield from _run_records(conn, run_id)


def _run_records(conn: Db, run_id: str) -> Iterator[TrajectoryRecord]:
    run = conn.execute(
        "SELECT workflow, status, task_json, score FROM runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    if run is None:
        return
    workflow, status, task_json, score = run
    final_score: float | None
    if score is not None:
        final_score = float(score)
    elif status in ("ok", "partial"):  # partial: the answer stood; steps carry failures
        final_score = 1.0
    elif status in _FAILED_RUN:
        final_score = 0.0
    else:
        final_score = None
    rows = conn.execute(
        "SELECT l.step_kind, l.model, l.routing_json, l.messages_json, l.parent_call_id,"
        " l.round, l.input_tokens, l.output_tokens, l.cost_usd, l.latency_s, l.budget_left_usd,"
        " a.arguments_json, a.status, a.finished_at,"
        " pc.outcome"
        " FROM llm_calls l"
        " LEFT JOIN attempts a ON a.call_id = l.parent_call_id"
        " LEFT JOIN plan_calls pc ON pc.call_id = l.parent_call_id"
        " WHERE l.run_id = ? AND l.finished_at IS NOT NULL AND l.error IS NULL"
        " ORDER BY l.started_at, l.rowid",
        (run_id,),
    ).fetchall()
    for index, r in enumerate(rows):
        routing = _as_dict(_loads(r[2]))
        info = _as_dict(routing.get("info"))
        model = str(r[1])
        candidates = _candidates(routing, info, model)
        kind = r[0] if r[0] in ("plan", "agent_turn", "aggregate") else "agent_turn"
        cost = Decimal(r[8]) if r[8] is not None else Decimal(0)
        yield TrajectoryRecord(
            run_id=run_id,
            step_index=index,
            step_kind=kind,
            task=workflow,
            context_text=_context_text(info, r[3], r[11], task_json, kind),
            candidates=candidates,
            chosen_model=model,
            propensity=_propensity(routing.get("propensity")),
            cost_usd=float(cost),
            input_tokens=r[6],
            output_tokens=r[7],
            latency_s=r[9],
            step_success=_step_success(r[12], r[13], r[14]),
            final_score=final_score,
            budget_left_usd=_budget_before(info.get("budget_left_usd"), r[10], cost),
        )


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _candidates(routing: dict[str, Any], info: dict[str, Any], model: str) -> tuple[str, ...]:
    for source in (info.get("candidates"), info.get("allowed"), routing.get("scores")):
        if isinstance(source, dict | list | tuple) and source:
            names = tuple(str(x) for x in source)
            return names if model in names else ()
    return ()


def _propensity(value: Any) -> float | None:
    if isinstance(value, int | float) and 0.0 < float(value) <= 1.0:
        return float(value)
    return None


def _context_text(
    info: dict[str, Any],
    messages_json: str | None,
    arguments_json: str | None,
    task_json: str | None,
    kind: str,
) -> str:
    text = info.get("context_text")
    if isinstance(text, str) and text:
        return text
    messages = _loads(messages_json)
    if isinstance(messages, list) and messages:
        parts = [
            f"{m.get('role', '?')}: {m.get('content')}"
            for m in messages
            if isinstance(m, dict) and isinstance(m.get("content"), str)
        ]
        if parts:
            return "\n".join(parts)
    if kind != "plan" and arguments_json is not None:
        arguments = _loads(arguments_json)
        if isinstance(arguments, dict) and isinstance(arguments.get("task"), str):
            return str(arguments["task"])
        return arguments_json
    task = _loads(task_json)
    return task if isinstance(task, str) else (task_json or "")


def _step_success(
    action_status: str | None, action_finished: float | None, plan_outcome: str | None
) -> float | None:
    if action_status is not None:
        if action_finished is None or action_status == "cancelled":
            return None
        return 1.0 if action_status == "ok" else 0.0
    if plan_outcome is not None:
        return 0.0 if plan_outcome == "error" else 1.0
    return None


def _budget_before(recorded: Any, left_after: str | None, cost: Decimal) -> float | None:
    if isinstance(recorded, int | float | str):
        try:
            return float(recorded)
        except ValueError:
            return None
    if left_after is None:
        return None
    return float(Decimal(left_after) + cost)
