from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from paraloom import (
    FailurePolicy,
    FinalAnswer,
    Orchestrator,
    Plan,
    PlannerContext,
    StateFeedback,
    StaticPlanner,
    Subtask,
    WorkflowAction,
    tool,
)
from paraloom.protocols.events import Event, RunStarted, SubtaskStarted
from paraloom.store import (
    RunNotFoundError,
    RunStore,
    StoreError,
    default_store_path,
    is_postgres_url,
)
from paraloom.tools.function import FunctionTool, RetryableError
from tests.store.conftest import query

pytestmark = pytest.mark.anyio


@tool
async def square(x: int) -> int:
    return x * x


@tool
async def add(a: int, b: int) -> int:
    return a + b


@tool
async def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


class TwoRounds:
    name = "two-rounds"

    async def next_round(
        self, task: Any, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        if feedback is None:
            return Plan(
                subtasks=(
                    Subtask(id="a", action="square", arguments={"x": 2}),
                    Subtask(id="b", action="square", arguments={"x": 3}),
                )
            )
        if feedback.round == 1:
            return Plan(
                subtasks=(
                    Subtask(
                        id="c",
                        action="add",
                        arguments={"a": {"from": "a.output"}, "b": {"from": "b.output"}},
                    ),
                )
            )
        return FinalAnswer(output={"sum": {"from": "c.output"}})


@pytest.fixture
def store(store_location: str) -> Any:
    """A store on each backend (SQLite, PostgreSQL)."""
    with RunStore(store_location) as s:
        yield s


async def test_records_every_round_subtask_and_attempt(store: RunStore) -> None:
    seen: list[Event] = []
    orch = Orchestrator(
        [square, add],
        TwoRounds(),
        name="sums",
        listeners=[store.listener(source="flows/sums.yaml", metadata={"input": "x"})],
    )
    result = await orch.run({"topic": "t"}, on_event=seen.append, budget="1.5")
    assert result.ok
    await store.aflush()

    run = store.get_run(result.run_id)
    assert run.workflow == "sums"
    assert run.status == "ok"
    assert run.source == "flows/sums.yaml"
    assert run.metadata == {"input": "x"}
    assert run.task == {"topic": "t"}
    assert run.output == {"sum": 13}
    assert run.budget_usd == Decimal("1.5")
    assert run.sessions == 1
    assert run.ended_at is not None
    assert [r.round for r in run.rounds] == [1, 2, 3]
    assert run.rounds[0].plan is not None
    assert [s.id for s in run.rounds[0].plan.subtasks] == ["a", "b"]
    assert run.rounds[2].final and run.rounds[2].final_output == {"sum": 13}
    by_id = {s.subtask_id: s for s in run.subtasks}
    assert set(by_id) == {"a", "b", "c"}
    assert by_id["c"].depends_on == ()  # a and b are earlier rounds, not in-round deps
    assert by_id["c"].round == 2
    assert by_id["c"].result is not None and by_id["c"].result.output == 13
    assert all(s.status == "ok" and s.executions == 1 for s in run.subtasks)
    assert (run.subtasks_total, run.subtasks_ok) == (3, 3)

    # the raw log is exactly what was emitted, in order
    assert store.events(result.run_id) == seen

    listed = store.list_runs()
    assert [r.run_id for r in listed] == [result.run_id]
    assert store.get_run(result.run_id[:8]).run_id == result.run_id


async def test_retries_failures_and_skips_are_recorded(store: RunStore) -> None:
    calls = {"n": 0}

    @tool
    async def flaky(x: int) -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RetryableError("try again")
        return x

    plan = Plan(
        subtasks=(
            Subtask(
                id="f",
                action="flaky",
                arguments={"x": 1},
                policy=FailurePolicy(retries=3, backoff_initial_s=0, backoff_jitter_s=0),
            ),
            Subtask(id="bad", action="boom", arguments={"x": 2}),
            Subtask(id="after", action="square", arguments={"x": {"from": "bad.output"}}),
        )
    )
    orch = Orchestrator(
        [flaky, boom, square], StaticPlanner(plan, output=None), listeners=[store.listener()]
    )
    result = await orch.run()
    await store.aflush()
    run = store.get_run(result.run_id)
    by_id = {s.subtask_id: s for s in run.subtasks}
    assert by_id["f"].status == "ok"
    assert by_id["f"].retries == 2
    assert by_id["bad"].status == "error"
    assert by_id["bad"].result is not None and by_id["bad"].result.error is not None
    assert "boom 2" in by_id["bad"].result.error.message
    assert by_id["after"].status == "skipped"
    assert by_id["after"].reason is not None and "bad" in by_id["after"].reason
    attempts = query(
        store.location,
        "SELECT attempt, status FROM attempts WHERE run_id = ? AND subtask_id = 'f'"
        " ORDER BY attempt",
        (result.run_id,),
    )
    assert attempts == [(1, "retryable_error"), (2, "retryable_error"), (3, "ok")]


async def test_failed_run_status_and_error(store: RunStore) -> None:
    plan = Plan(
        subtasks=(
            Subtask(
                id="x", action="boom", arguments={"x": 1}, policy=FailurePolicy(on_failure="fail")
            ),
        )
    )
    orch = Orchestrator([boom], StaticPlanner(plan), listeners=[store.listener()])
    result = await orch.run()
    assert result.status == "failed"
    store.flush()
    run = store.get_run(result.run_id)
    assert run.status == "failed"
    assert run.error is not None and "boom 1" in run.error
    assert run.resumable
    assert store.list_runs(status="failed")[0].run_id == result.run_id
    assert store.list_runs(status="ok") == []


async def test_concurrent_runs_in_one_store_stay_apart(store: RunStore) -> None:
    gate = anyio.Event()

    @tool
    async def wait_then(x: int) -> int:
        await gate.wait()
        return x

    def plan_for(n: int) -> Plan:
        return Plan(
            subtasks=(
                Subtask(id="a", action="wait_then", arguments={"x": n}),
                Subtask(id="b", action="square", arguments={"x": {"from": "a.output"}}),
            )
        )

    results: dict[int, Any] = {}
    started = 0
    all_started = anyio.Event()

    def on_event(event: Event) -> None:
        nonlocal started
        if event.type == "subtask_started" and event.subtask_id == "a":
            started += 1
            if started == 8:
                all_started.set()

    async def one(n: int) -> None:
        orch = Orchestrator(
            [wait_then, square],
            StaticPlanner(plan_for(n)),
            name=f"w{n}",
            listeners=[store.listener(source=f"f{n}.yaml")],
        )
        results[n] = await orch.run(n, on_event=on_event)

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(one, n)
        await all_started.wait()
        gate.set()
    await store.aflush()
    assert len(store.list_runs()) == 8
    for n, result in results.items():
        run = store.get_run(result.run_id)
        assert run.workflow == f"w{n}"
        assert run.source == f"f{n}.yaml"
        assert run.task == n
        assert run.output == n * n
        assert {s.subtask_id: s.result.output for s in run.subtasks if s.result} == {
            "a": n,
            "b": n * n,
        }


async def test_nested_workflow_runs_name_their_parent(store: RunStore) -> None:
    inner_plan = Plan(subtasks=(Subtask(id="s", action="square", arguments={"x": 4}),))
    inner = Orchestrator([square], StaticPlanner(inner_plan), name="inner")
    outer_plan = Plan(subtasks=(Subtask(id="w", action="inner", arguments={"task": "go"}),))
    outer = Orchestrator(
        [WorkflowAction(inner)],
        StaticPlanner(outer_plan),
        name="outer",
        listeners=[store.listener(source="o.yaml")],
    )
    result = await outer.run("top")
    assert result.output == 16
    await store.aflush()
    assert [r.run_id for r in store.list_runs()] == [result.run_id]
    everything = store.list_runs(include_children=True)
    assert len(everything) == 2
    run = store.get_run(result.run_id)
    assert len(run.child_run_ids) == 1
    child = store.get_run(run.child_run_ids[0])
    assert child.workflow == "inner"
    assert child.parent_run_id == result.run_id
    assert child.source is None
    assert child.output == 16


def test_unknown_ids_and_closed_store(store_location: str) -> None:
    store = RunStore(store_location)
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        store.get_run("nope")
    with pytest.raises(RunNotFoundError):
        store.resume_state("nope")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()
    with pytest.raises(StoreError, match="closed"):
        store.listener()


async def test_ambiguous_prefix_is_an_error(store: RunStore) -> None:
    orch = Orchestrator(
        [square],
        StaticPlanner(Plan(subtasks=(Subtask(id="a", action="square", arguments={"x": 1}),))),
        listeners=[store.listener()],
    )
    await orch.run(run_id="run_same1")
    await orch.run(run_id="run_same2")
    await store.aflush()
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        store.get_run("run_same")
    assert store.get_run("run_same2").run_id == "run_same2"


def test_missing_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        RunStore(tmp_path / "nope.sqlite", create=False)
    assert not (tmp_path / "nope.sqlite").exists()


def test_not_a_store_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"bad\.sqlite"):
        RunStore(bad)


def test_default_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PARALOOM_STORE", raising=False)
    assert default_store_path() == Path(".paraloom") / "runs.sqlite"
    monkeypatch.setenv("PARALOOM_STORE", str(tmp_path / "x" / "r.sqlite"))
    with RunStore() as store:
        assert store.path == tmp_path / "x" / "r.sqlite"
        assert store.path.exists()
    with sqlite3.connect(tmp_path / "x" / "r.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_set_score(store: RunStore) -> None:
    orch = Orchestrator(
        [square],
        StaticPlanner(Plan(subtasks=(Subtask(id="a", action="square", arguments={"x": 1}),))),
        listeners=[store.listener()],
    )
    result = await orch.run()
    await store.aflush()
    store.set_score(result.run_id, 0.25)
    assert store.get_run(result.run_id).score == 0.25
    with pytest.raises(ValueError, match="within"):
        store.set_score(result.run_id, 2.0)


async def test_durable_executor_commits_before_each_attempt(store: RunStore) -> None:
    """With ``store.executor()`` an action starts only once its dependency's finish is in
    the file: a second connection sees it from inside the tool. (Its own start need not
    be committed yet: the executor waits for its inputs, not for every earlier event.)"""
    seen: dict[str, tuple[str | None, str | None]] = {}

    def check(name: str, after: str) -> str:  # sync: runs in a worker thread
        dep = query(store.location, "SELECT status FROM subtasks WHERE subtask_id = ?", (after,))
        own = query(store.location, "SELECT status FROM attempts WHERE subtask_id = ?", (name,))
        seen[name] = (dep[0][0] if dep else None, own[0][0] if own else None)
        return name

    plan = Plan(
        subtasks=tuple(
            Subtask(
                id=f"s{i}",
                action="check",
                arguments={"name": f"s{i}", "after": f"s{i - 1}"},
                depends_on=(f"s{i - 1}",) if i else (),
            )
            for i in range(6)
        )
    )
    orch = Orchestrator(
        [FunctionTool(check)],
        StaticPlanner(plan, output=None),
        listeners=[store.listener()],
        executor=store.executor(),
    )
    result = await orch.run()
    assert result.ok
    assert seen["s0"][0] is None
    for i in range(1, 6):
        assert seen[f"s{i}"][0] == "ok", i
        assert seen[f"s{i}"][1] in (None, "running"), i


_REFUSE_SQLITE = (
    "CREATE TRIGGER refuse BEFORE INSERT ON subtasks WHEN NEW.subtask_id = 'poison'"
    " BEGIN SELECT RAISE(ABORT, 'refused'); END"
)
_REFUSE_POSTGRES = (
    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF NEW.subtask_id = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW;"
    " END $$;"
    " CREATE TRIGGER refuse BEFORE INSERT ON subtasks FOR EACH ROW EXECUTE FUNCTION refuse()"
)


def test_a_failing_event_is_reported_and_the_rest_is_kept(store_location: str) -> None:
    """A batch the database refuses is rolled back and written again event by event (on
    PostgreSQL the batch went out as one pipeline)."""
    with RunStore(store_location) as store:
        # sabotage: the database refuses one subtask
        if is_postgres_url(store_location):
            import psycopg

            with psycopg.connect(store_location, autocommit=True) as pg:
                pg.execute(_REFUSE_POSTGRES)
        else:
            with sqlite3.connect(store_location) as conn:
                conn.execute(_REFUSE_SQLITE)
        store.record(RunStarted(run_id="r", workflow="w"))
        for sid in ("good1", "poison", "good2"):
            store.record(SubtaskStarted(run_id="r", round=1, subtask_id=sid, action="a"))
        with pytest.raises(StoreError, match=r"subtask_started of run r: .*refused"):
            store.flush()
        store.flush()  # reported once
        assert {s.subtask_id for s in store.get_run("r").subtasks} == {"good1", "good2"}


# what the PostgreSQL spelling of NUL must not confuse with it: its escape character
# (alone, doubled, before "0"), and the text of a \u0000 escape (plain, and after a
# backslash)
_LOOKALIKES = {"esc": "\uf8ff0 \uf8ff\uf8ff \uf8ff", "text \\u0000": "\\u0000 \\\\u0000"}


@tool
async def nul_text(x: str) -> str:
    raise ValueError(f"bad\x00byte {x} \uf8ff0")


@tool
async def echo_nul(x: str) -> dict[str, str]:
    return {"text": x + "\x00end", "key\x00": "v", **_LOOKALIKES}


@pytest.mark.anyio
async def test_nul_characters_are_recorded_exactly(store: RunStore) -> None:
    """A NUL character (U+0000) in a task, an output or an error message is stored and
    read back exactly, on PostgreSQL too (whose text and json operators refuse it: the
    store spells it with a private-use character there, see paraloom.store.pgtext)."""
    plan = Plan(
        subtasks=(
            Subtask(id="e", action="echo_nul", arguments={"x": "a\x00b"}),
            Subtask(id="n", action="nul_text", arguments={"x": "z\x00"}),
        )
    )
    orch = Orchestrator([echo_nul, nul_text], StaticPlanner(plan, {"from": "e.output"}))
    result = await orch.run({"task": "t\x00"}, on_event=store.listener())
    await store.aflush()  # raises if an event was refused
    output = {"text": "a\x00b\x00end", "key\x00": "v", **_LOOKALIKES}
    assert result.subtasks["e"].output == output
    run = store.get_run(result.run_id)
    assert run.task == {"task": "t\x00"}
    records = {s.subtask_id: s for s in run.subtasks}
    assert records["e"].result is not None and records["e"].result.output == output
    failed = records["n"].result
    assert failed is not None and failed.error is not None
    assert "bad\x00byte z\x00 \uf8ff0" in failed.error.message
    events = store.events(result.run_id)
    assert events[0].type == "run_started" and len(events) >= 8
    assert store.resume_state(result.run_id).results["e"].output == output
