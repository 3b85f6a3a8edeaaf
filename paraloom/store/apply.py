"""How events land in the tables: flattened in Python, applied by database triggers.

Each event is serialised once, as the raw event JSON (``data_json``); the triggers take
its fields with ``json_extract`` (GIL-free, inside SQLite), so the Python side of the
writer — which competes with the event loop for the GIL — stays one ``model_dump_json``.

The writer thread turns each event into one flat row (:func:`flatten`) and inserts a
whole batch with ONE multi-row ``INSERT INTO incoming VALUES (…), (…), …`` into a
per-connection TEMP view whose ``INSTEAD OF`` triggers append the raw event to
``events`` and upsert ``runs``/``rounds``/``subtasks``/``attempts``/``llm_calls`` (no
row is staged). A batch of up to 500 events is thus ONE call into SQLite, its own
transaction (autocommit: the statement is the transaction), whatever the event types:
every call releases and re-takes the GIL, and each re-take while the event loop runs
costs a thread hand-off (a wake-up of the loop's thread, then of the writer's) — a
``BEGIN``, ``INSERT``, ``DELETE``, ``COMMIT`` per batch made a chain of no-op
subtasks recorded by a listener alone three times slower.

The rules (:data:`_TRIGGERS`) are written once; PostgreSQL runs the same text in one
trigger function (see :func:`install_projection` and :mod:`paraloom.store.dialect`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from paraloom.protocols.events import (
    Event,
    PlanCreated,
    RunFinished,
    RunStarted,
)
from paraloom.store.db import Db
from paraloom.store.dialect import POSTGRES
from paraloom.store.pgtext import encode_json_text
from paraloom.store.schema import _SCHEMA_LOCK

__all__ = [
    "MAX_ROWS_PER_INSERT",
    "RunTags",
    "dumps",
    "flatten",
    "flatten_postgres",
    "insert_sql",
    "install_projection",
]


@dataclass(frozen=True, slots=True)
class RunTags:
    """What a listener adds to the runs it records (to rebuild a run for resume)."""

    source: str | None = None
    metadata: Mapping[str, JsonValue] = field(default_factory=dict)


_TYPED_COLUMNS = (
    ("session", "TEXT"),
    ("emit_seq", "INTEGER"),
    ("run_id", "TEXT"),
    ("type", "TEXT"),
    ("ts", "REAL"),
    ("data_json", "TEXT"),
    ("source", "TEXT"),
    ("metadata_json", "TEXT"),
    ("task_json", "TEXT"),
    ("output_json", "TEXT"),
    ("final_output_json", "TEXT"),
    ("has_final", "INTEGER"),
)
_COLUMNS = tuple(name for name, _ in _TYPED_COLUMNS)

MAX_ROWS_PER_INSERT = 500
"""Rows per multi-row INSERT (far below SQLite's bound-parameter limit)."""

_ROW_SQL = "(" + ", ".join("?" * len(_COLUMNS)) + ")"


def insert_sql(rows: int) -> str:
    """One statement inserting ``rows`` flat rows (``rows <= MAX_ROWS_PER_INSERT``)."""
    return f"INSERT INTO incoming ({', '.join(_COLUMNS)}) VALUES " + ", ".join([_ROW_SQL] * rows)


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def flatten(event: Event, tags: RunTags, session: str, seq: int) -> tuple[Any, ...]:
    """The row for ``event``: the raw event JSON plus what SQL cannot take from it —
    the listener's tags, and free-form JSON values as JSON *text* (``json_extract``
    returns a JSON string as a bare SQL string, so they are dumped here)."""
    data = event.model_dump_json()
    source = metadata = task = output = final = None
    has_final = 0
    if isinstance(event, RunStarted):
        task = dumps(event.task)
        if event.parent_call_id is None:
            source = tags.source
            metadata = dumps(dict(tags.metadata)) if tags.metadata else None
    elif isinstance(event, RunFinished):
        output = dumps(event.output)
    elif isinstance(event, PlanCreated) and event.plan is None and event.error is None:
        has_final = 1
        final = dumps(event.final_output)
    return (
        session,
        seq,
        event.run_id,
        event.type,
        event.ts,
        data,
        source,
        metadata,
        task,
        output,
        final,
        has_final,
    )


_JSON_AT = tuple(i for i, name in enumerate(_COLUMNS) if name.endswith("_json"))


def flatten_postgres(event: Event, tags: RunTags, session: str, seq: int) -> tuple[Any, ...]:
    """:func:`flatten` for PostgreSQL: its JSON text with NUL spelled as
    :mod:`paraloom.store.pgtext` says (PostgreSQL refuses U+0000)."""
    row = list(flatten(event, tags, session, seq))
    for i in _JSON_AT:
        if row[i] is not None:
            row[i] = encode_json_text(row[i])
    return tuple(row)


_STAGING_TABLE = (
    "CREATE TABLE IF NOT EXISTS incoming ("
    + ", ".join(f"{name} {kind}" for name, kind in _TYPED_COLUMNS)
    + ")"
)
_TEMP_VIEW = (
    "CREATE TEMP VIEW IF NOT EXISTS incoming AS SELECT "
    + ", ".join(f"NULL AS {name}" for name in _COLUMNS)
    + " WHERE 0"
)

# In trigger bodies ``$a.b`` stands for a field of the raw event: on SQLite
# json_extract(NEW.data_json, '$.a.b') (SQLite caches the parse, so several fields cost
# one parse); on PostgreSQL the text at that path, cast to its FIELD_TYPES type. The
# statements use the SQL both databases share (ON CONFLICT … DO UPDATE, no INSERT OR
# REPLACE; flags compared with ``= 1``).
_TRIGGERS: dict[str, str] = {
    "log": """
        INSERT INTO events (session, emit_seq, run_id, type, ts, data_json)
        VALUES (NEW.session, NEW.emit_seq, NEW.run_id, NEW.type, NEW.ts, NEW.data_json);
    """,
    "run_started": """
        INSERT INTO runs (run_id, workflow, status, task_json, source, metadata_json,
                          parent_run_id, parent_call_id, budget_usd, sessions, started_at,
                          updated_at)
        VALUES (NEW.run_id, $workflow, 'running', NEW.task_json, NEW.source,
                NEW.metadata_json,
                (SELECT run_id FROM attempts WHERE call_id = $parent_call_id),
                $parent_call_id, $budget_usd, 1, NEW.ts, NEW.ts)
        ON CONFLICT (run_id) DO UPDATE SET status = 'running', workflow = excluded.workflow,
            task_json = excluded.task_json,
            source = COALESCE(excluded.source, runs.source),
            metadata_json = COALESCE(excluded.metadata_json, runs.metadata_json),
            budget_usd = excluded.budget_usd, error = NULL, ended_at = NULL,
            sessions = runs.sessions + 1, updated_at = excluded.updated_at;
    """,
    "run_finished": """
        UPDATE runs SET status = $status, output_json = NEW.output_json, error = $error,
            cost_usd = $cost_usd, warnings_json = $warnings, ended_at = NEW.ts,
            updated_at = NEW.ts
        WHERE run_id = NEW.run_id;
    """,
    "round_started": """
        INSERT INTO rounds (run_id, round, call_id, planner, started_at)
        VALUES (NEW.run_id, $round, $call_id, $planner, NEW.ts)
        ON CONFLICT (run_id, round) DO UPDATE SET call_id = excluded.call_id,
            planner = excluded.planner, started_at = excluded.started_at, finished_at = NULL;
        INSERT INTO plan_calls (call_id, run_id, round)
        VALUES ($call_id, NEW.run_id, $round)
        ON CONFLICT (call_id) DO UPDATE SET run_id = excluded.run_id,
            round = excluded.round, outcome = NULL;
    """,
    "plan_created": """
        INSERT INTO rounds (run_id, round, call_id, planner, started_at)
        VALUES (NEW.run_id, $round, $call_id, $planner, NEW.ts)
        ON CONFLICT (run_id, round) DO NOTHING;
        UPDATE rounds SET plan_json = $plan, has_final = NEW.has_final,
            final_output_json = NEW.final_output_json, error = $error,
            replayed = $replayed, planned_at = NEW.ts
        WHERE run_id = NEW.run_id AND round = $round;
        UPDATE plan_calls SET outcome = CASE WHEN $error IS NOT NULL THEN 'error'
            WHEN NEW.has_final = 1 THEN 'final' ELSE 'plan' END
        WHERE call_id = $call_id;
    """,
    "round_finished": """
        UPDATE rounds SET feedback_json = $feedback, finished_at = NEW.ts
        WHERE run_id = NEW.run_id AND round = $round;
    """,
    "subtask_started": """
        INSERT INTO subtasks (run_id, subtask_id, round, action, kind, depends_on_json,
                              status, executions, started_at)
        VALUES (NEW.run_id, $subtask_id, $round, $action, $kind, $depends_on, 'running', 1,
                NEW.ts)
        ON CONFLICT (run_id, subtask_id) DO UPDATE SET round = excluded.round,
            action = excluded.action, kind = excluded.kind,
            depends_on_json = excluded.depends_on_json, status = 'running',
            result_json = NULL, cost_usd = NULL, reason = NULL, reused = 0,
            executions = subtasks.executions + 1, started_at = excluded.started_at,
            finished_at = NULL;
    """,
    "subtask_retried": """
        UPDATE subtasks SET retries = retries + 1, reason = $reason
        WHERE run_id = NEW.run_id AND subtask_id = $subtask_id;
    """,
    "subtask_finished": """
        INSERT INTO subtasks (run_id, subtask_id, round, action, status, result_json,
                              cost_usd, reused, finished_at)
        SELECT NEW.run_id, $subtask_id, $round, $result.action, $result.status, $result,
               $result.cost_usd, $reused, NEW.ts
        WHERE NOT ($reused = 1 AND EXISTS (SELECT 1 FROM subtasks WHERE run_id = NEW.run_id
                   AND subtask_id = $subtask_id AND status = 'ok'))
        ON CONFLICT (run_id, subtask_id) DO UPDATE SET status = excluded.status,
            result_json = excluded.result_json, cost_usd = excluded.cost_usd,
            reused = excluded.reused, round = excluded.round,
            finished_at = excluded.finished_at;
        UPDATE subtasks SET reused = 1, round = $round
        WHERE $reused = 1 AND run_id = NEW.run_id AND subtask_id = $subtask_id;
    """,
    "subtask_skipped": """
        INSERT INTO subtasks (run_id, subtask_id, round, action, status, reason, finished_at)
        VALUES (NEW.run_id, $subtask_id, $round, '', 'skipped', $reason, NEW.ts)
        ON CONFLICT (run_id, subtask_id) DO UPDATE SET status = 'skipped',
            reason = excluded.reason, round = excluded.round,
            finished_at = excluded.finished_at;
    """,
    "action_started": """
        INSERT INTO attempts (call_id, run_id, subtask_id, parent_call_id, action, kind,
                              attempt, arguments_json, status, started_at)
        VALUES ($call_id, NEW.run_id, $subtask_id, $parent_call_id, $action, $kind, $attempt,
                $arguments, 'running', NEW.ts)
        ON CONFLICT (call_id) DO UPDATE SET run_id = excluded.run_id,
            subtask_id = excluded.subtask_id, parent_call_id = excluded.parent_call_id,
            action = excluded.action, kind = excluded.kind, attempt = excluded.attempt,
            arguments_json = excluded.arguments_json, status = 'running',
            result_json = NULL, started_at = excluded.started_at, finished_at = NULL;
    """,
    "action_finished": """
        UPDATE attempts SET status = $result.status, result_json = $result,
            finished_at = NEW.ts
        WHERE call_id = $call_id;
    """,
    "approval_requested": """
        INSERT INTO approvals (run_id, key, subtask_id, round, call_id, action,
                               arguments_json, projection_json, requested_at)
        VALUES (NEW.run_id, $request.key, $request.subtask_id, $request.round,
                $request.call_id, $request.action, $request.arguments, $request.projection,
                $request.requested_at)
        ON CONFLICT (run_id, key) DO UPDATE SET round = excluded.round,
            call_id = excluded.call_id, arguments_json = excluded.arguments_json,
            projection_json = excluded.projection_json,
            requested_at = excluded.requested_at, outcome = NULL, decided_by = NULL,
            reason = NULL, edited_json = NULL, decided_at = NULL, waited_s = NULL,
            offline = 0;
        UPDATE runs SET status = 'waiting', updated_at = NEW.ts
        WHERE run_id = NEW.run_id AND status = 'running';
    """,
    "approval_decided": """
        INSERT INTO approvals (run_id, key, subtask_id)
        VALUES (NEW.run_id, $key, $subtask_id)
        ON CONFLICT (run_id, key) DO NOTHING;
        UPDATE approvals SET outcome = $decision.outcome, decided_by = $decision.by,
            reason = $decision.reason, edited_json = $decision.arguments,
            decided_at = $decision.decided_at, waited_s = $waited_s,
            offline = COALESCE($offline, 0)
        WHERE run_id = NEW.run_id AND key = $key;
        UPDATE runs SET status = 'running', updated_at = NEW.ts
        WHERE run_id = NEW.run_id AND status = 'waiting' AND COALESCE($offline, 0) = 0
            AND NOT EXISTS (SELECT 1 FROM approvals WHERE run_id = NEW.run_id
                            AND outcome IS NULL);
    """,
    "llm_call_started": """
        INSERT INTO llm_calls (llm_call_id, run_id, parent_call_id, round, subtask_id,
            model, provider, step_kind, routing_json, reserved_usd, messages_json, started_at)
        VALUES ($llm_call_id, NEW.run_id, $parent_call_id,
                (SELECT round FROM plan_calls WHERE call_id = $parent_call_id),
                (SELECT subtask_id FROM attempts WHERE call_id = $parent_call_id),
                $model, $provider, $step_kind, $routing, $reserved_usd, $messages, NEW.ts)
        ON CONFLICT (llm_call_id) DO UPDATE SET run_id = excluded.run_id,
            parent_call_id = excluded.parent_call_id, round = excluded.round,
            subtask_id = excluded.subtask_id, model = excluded.model,
            provider = excluded.provider, step_kind = excluded.step_kind,
            routing_json = excluded.routing_json, reserved_usd = excluded.reserved_usd,
            messages_json = excluded.messages_json, started_at = excluded.started_at,
            response_model = NULL, input_tokens = NULL, output_tokens = NULL,
            cost_usd = NULL, finish_reason = NULL, latency_s = NULL, error = NULL,
            budget_left_usd = NULL, output_json = NULL, cached_input_tokens = NULL,
            reasoning_tokens = NULL, cache_write_tokens = NULL, abandoned = 0,
            usage_anomaly = NULL, finished_at = NULL;
    """,
    "llm_call_finished": """
        INSERT INTO llm_calls (llm_call_id, run_id, parent_call_id, model, started_at)
        VALUES ($llm_call_id, NEW.run_id, $parent_call_id, $model, NEW.ts)
        ON CONFLICT (llm_call_id) DO NOTHING;
        UPDATE llm_calls SET response_model = $response_model,
            input_tokens = $usage.input_tokens, output_tokens = $usage.output_tokens,
            cost_usd = $cost_usd, finish_reason = $finish_reason, latency_s = $latency_s,
            error = $error, budget_left_usd = $budget_left_usd, output_json = $output,
            cached_input_tokens = $usage.cached_input_tokens,
            reasoning_tokens = $usage.reasoning_tokens,
            cache_write_tokens = $usage.cache_write_tokens,
            abandoned = COALESCE($abandoned, 0), usage_anomaly = $usage_anomaly,
            finished_at = NEW.ts
        WHERE llm_call_id = $llm_call_id;
    """,
}

_RULES = {name: body for name, body in _TRIGGERS.items() if name != "log"}

FIELD_TYPES: dict[str, str] = {
    "round": "INTEGER",
    "attempt": "INTEGER",
    "request.round": "INTEGER",
    "usage.input_tokens": "INTEGER",
    "usage.output_tokens": "INTEGER",
    "usage.cached_input_tokens": "INTEGER",
    "usage.reasoning_tokens": "INTEGER",
    "usage.cache_write_tokens": "INTEGER",
    "latency_s": "REAL",
    "waited_s": "REAL",
    "request.requested_at": "REAL",
    "decision.decided_at": "REAL",
    "reused": "flag",
    "replayed": "flag",
    "offline": "flag",
    "abandoned": "flag",
}
"""The SQL type of the event fields the rules read that are not text (``flag``: a JSON
boolean, stored as 0/1). SQLite's ``json_extract`` types them itself; PostgreSQL casts."""

_PG_FUNCTION = "paraloom_apply_event"


def _pg_function_sql() -> str:
    branches = "\n".join(
        f"    {'IF' if i == 0 else 'ELSIF'} NEW.type = '{name}' THEN\n"
        + POSTGRES.expand(body, FIELD_TYPES, "j")
        for i, (name, body) in enumerate(_RULES.items())
    )
    return (
        f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger"
        " LANGUAGE plpgsql AS $fn$\nDECLARE j json := NEW.data_json::json;\nBEGIN\n"
        + POSTGRES.expand(_TRIGGERS["log"], FIELD_TYPES, "j")
        + f"\n{branches}\n    END IF;\n    RETURN NULL;\nEND\n$fn$"
    )


def install_projection(db: Db) -> None:
    """Make inserts into ``incoming`` apply the rules: SQLite ``INSTEAD OF`` triggers
    on this connection's TEMP view; PostgreSQL one ``BEFORE INSERT`` trigger function
    (shared, installed or replaced when its text changed, under the schema lock), which
    drops the staged row. Either way ``incoming`` stays empty."""
    dialect = db.dialect
    if not dialect.postgres:
        db.execute(_TEMP_VIEW)
        for name, body in _TRIGGERS.items():
            when = "" if name == "log" else f" WHEN NEW.type = '{name}'"
            db.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS incoming_{name}"
                f" INSTEAD OF INSERT ON incoming{when}"
                f" BEGIN {dialect.expand(body, FIELD_TYPES, 'NEW.data_json')} END"
            )
        return
    function = _pg_function_sql()
    digest = hashlib.sha256(function.encode()).hexdigest()
    with db.write():
        db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        row = db.execute("SELECT value FROM meta WHERE key = 'projection'").fetchone()
        if row is not None and row[0] == digest:
            return
        db.execute(dialect.ddl(_STAGING_TABLE).replace("CREATE TABLE", "CREATE UNLOGGED TABLE"))
        db.execute(function)
        db.execute(
            "CREATE OR REPLACE TRIGGER incoming_apply BEFORE INSERT ON incoming"
            f" FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()"
        )
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('projection', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (digest,),
        )
