"""The durable executor waits for what an attempt depends on, not for every earlier event.

The writer's commits are held back by another connection holding the file's write lock
(``BEGIN IMMEDIATE``), so "committed or not" is decided by the test, not by timing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import cast

import anyio
import anyio.lowlevel
import pytest

from paraloom.orchestrator.executor import Executor
from paraloom.protocols.actions import ActionCall, ActionResult, ActionStatus
from paraloom.protocols.events import (
    PlanCreated,
    RunStarted,
    SubtaskFinished,
    SubtaskStarted,
)
from paraloom.runtime.context import Action, ActionContext
from paraloom.store import RunStore

RUN = "run_dw"


class Recorder:
    """An inner executor that records which calls ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def invoke(
        self, action: Action, call: ActionCall, context: ActionContext
    ) -> ActionResult:
        self.ran.append(call.subtask_id or call.call_id)
        return ActionResult(call_id=call.call_id, action=call.action, status=ActionStatus.OK)


def started(sid: str, *deps: str) -> SubtaskStarted:
    return SubtaskStarted(run_id=RUN, round=1, subtask_id=sid, action="t", depends_on=deps)


def finished(sid: str) -> SubtaskFinished:
    result = ActionResult(call_id=f"call_{sid}", action="t", status=ActionStatus.OK, output=1)
    return SubtaskFinished(run_id=RUN, round=1, subtask_id=sid, result=result)


def call(sid: str | None, run_id: str = RUN) -> ActionCall:
    return ActionCall(action="t", run_id=run_id, subtask_id=sid)


def record_plan(store: RunStore) -> None:
    """Run ``RUN`` started and planned (round 1)."""
    store.record(RunStarted(run_id=RUN, workflow="w"))
    store.record(PlanCreated(run_id=RUN, round=1, call_id="p1"))


def durable(store: RunStore) -> tuple[Recorder, Executor, Action, ActionContext]:
    """The store's durable executor around a :class:`Recorder`, with run ``RUN`` planned."""
    inner = Recorder()
    executor = store.executor(inner)
    record_plan(store)
    return inner, executor, cast(Action, object()), ActionContext(run_id=RUN)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore(tmp_path / "runs.sqlite", busy_timeout_s=30.0)
    yield s  # type: ignore[misc]
    s.close()


def test_needed_is_the_plan_and_the_dependencies_finish(store: RunStore) -> None:
    record_plan(store)
    writer = store._get_writer()
    plan_seq = writer.submitted
    store.record(started("a"))
    store.record(started("z"))
    store.record(finished("a"))
    a_done = writer.submitted
    store.record(started("b", "a"))
    store.record(finished("z"))
    store.record(started("c"))

    assert writer.needed(call("b")) == a_done  # not z's later finish
    assert writer.needed(call("c")) == plan_seq  # a root: only the plan
    # what the writer cannot place waits for everything submitted
    assert writer.needed(call("unknown")) == writer.submitted
    assert writer.needed(call(None)) == writer.submitted
    assert writer.needed(call("b", run_id="other")) == writer.submitted
    store.flush()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_an_attempt_does_not_wait_for_an_unrelated_finish(store: RunStore) -> None:
    inner, executor, action, ctx = durable(store)
    for sid in ("a", "z"):
        store.record(started(sid))
    store.record(finished("a"))
    store.record(started("b", "a"))
    store.record(started("y", "z"))
    await store.aflush()

    blocker = sqlite3.connect(store.path, timeout=30, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the writer's next commit must wait for us
        store.record(finished("z"))  # queued, not committed
        writer = store._get_writer()
        assert writer.committed < writer.submitted

        # b's input (a's finish) is durable: b starts although z's finish is not
        with anyio.fail_after(10):
            await executor.invoke(action, call("b"), ctx)
        assert inner.ran == ["b"]
        assert writer.committed < writer.submitted

        # y depends on z: it must wait until z's finish is committed
        async with anyio.create_task_group() as tg:
            tg.start_soon(executor.invoke, action, call("y"), ctx)
            await anyio.wait_all_tasks_blocked()
            assert inner.ran == ["b"]
            blocker.execute("ROLLBACK")  # let the writer commit
        assert inner.ran == ["b", "y"]
        assert writer.committed >= writer.submitted
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_many_waiters_share_commits_and_all_start(store: RunStore) -> None:
    """A burst of attempts waiting for one uncommitted finish all start once it is
    committed, and a waiter that is cancelled does not strand the others."""
    inner, executor, action, ctx = durable(store)
    store.record(started("a"))
    await store.aflush()
    blocker = sqlite3.connect(store.path, timeout=30, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        store.record(finished("a"))
        for i in range(50):
            store.record(started(f"d{i}", "a"))
        async with anyio.create_task_group() as tg:
            doomed = anyio.CancelScope()

            async def cancelled_one() -> None:
                with doomed:
                    await executor.invoke(action, call("d0"), ctx)

            tg.start_soon(executor.invoke, action, call("d1"), ctx)  # the first waiter
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(cancelled_one)  # a later one
            for i in range(2, 50):
                tg.start_soon(executor.invoke, action, call(f"d{i}"), ctx)
            await anyio.wait_all_tasks_blocked()
            assert inner.ran == []
            doomed.cancel()
            await anyio.wait_all_tasks_blocked()
            blocker.execute("ROLLBACK")
        assert sorted(inner.ran) == sorted(f"d{i}" for i in range(1, 50))
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()


@pytest.mark.parametrize(("given", "pragma"), [(None, 1), ("NORMAL", 1), ("FULL", 2)])
def test_wal_and_synchronous_mode(tmp_path: Path, given: str | None, pragma: int) -> None:
    """WAL + synchronous=NORMAL by default (survives a process kill), FULL on request."""
    kwargs = {} if given is None else {"synchronous": given}
    with RunStore(tmp_path / "runs.sqlite", **kwargs) as store:  # type: ignore[arg-type]
        store.record(RunStarted(run_id=RUN, workflow="w"))
        store.flush()
        writer = store._get_writer()
        assert writer._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert writer._conn.execute("PRAGMA synchronous").fetchone()[0] == pragma


@pytest.mark.parametrize(("setting", "pragma"), [("", 1), ("store: {synchronous: FULL}\n", 2)])
def test_the_cli_store_takes_the_synchronous_setting(
    tmp_path: Path, setting: str, pragma: int
) -> None:
    from paraloom.cli.sinks import open_sinks
    from paraloom.config.load import load_config

    (tmp_path / "flow.yaml").write_text(setting + "tracing: {capture_content: false}\n")
    loaded = load_config([tmp_path / "flow.yaml"])
    sinks = open_sinks(
        loaded,
        trace=None,
        store_path=tmp_path / "runs.sqlite",
        no_store=False,
        capture_flag=False,
        metadata={},
    )
    assert sinks.store is not None
    try:
        conn = sinks.store._get_writer()._conn
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
    finally:
        sinks.store.close()


def test_a_bad_synchronous_setting_is_a_located_error(tmp_path: Path) -> None:
    from paraloom.config.errors import ConfigError
    from paraloom.config.load import load_config

    (tmp_path / "flow.yaml").write_text("store:\n  synchronous: OFF\n")
    with pytest.raises(ConfigError) as info:
        load_config([tmp_path / "flow.yaml"])
    assert "flow.yaml:2:" in str(info.value) and "synchronous" in str(info.value)
