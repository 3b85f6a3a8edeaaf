"""The lease as a fence (PostgreSQL): a writer whose lease expired — the process was
frozen, or cut off from the database, for longer than ``lease_s`` — may have had its
runs read ``crashed`` and resumed by another process, so it writes nothing more and
starts no new attempt."""

from __future__ import annotations

import time

import anyio
import psycopg
import pytest

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.protocols.events import RunStarted, SubtaskStarted
from paraloom.store import RunStore, StoreError
from tests.store.conftest import query

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

EXPIRED = "lease on the run store expired"


def expire_leases(url: str) -> None:
    """What the database sees of a writer frozen past its lease."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE sessions SET expires_at = EXTRACT(EPOCH FROM clock_timestamp()) - 1"
            " WHERE closed_at IS NULL"
        )


def stored_types(url: str, run_id: str) -> list[str]:
    return [
        t for (t,) in query(url, "SELECT type FROM events WHERE run_id = ? ORDER BY id", (run_id,))
    ]


def test_a_batch_after_the_lease_expired_is_refused_whole(pg_database: str) -> None:
    with RunStore(pg_database, lease_s=60) as store:  # no heartbeat during the test
        store.record(RunStarted(run_id="r1", workflow="w"))
        store.flush()
        expire_leases(pg_database)
        for sid in ("a", "b"):
            store.record(SubtaskStarted(run_id="r1", round=1, subtask_id=sid, action="x"))
        with pytest.raises(StoreError, match=EXPIRED):
            store.flush()
        store.record(SubtaskStarted(run_id="r1", round=1, subtask_id="c", action="x"))
        with pytest.raises(StoreError, match=EXPIRED):  # and every later event
            store.flush()
        assert store._writer is not None and store._writer.fenced is not None
    assert stored_types(pg_database, "r1") == ["run_started"]


def test_a_late_heartbeat_fences_the_writer(pg_database: str) -> None:
    with RunStore(pg_database, lease_s=0.6) as store:  # a heartbeat every 0.2 s
        store.record(RunStarted(run_id="r1", workflow="w"))
        store.flush()
        writer = store._writer
        assert writer is not None and writer.fenced is None
        expire_leases(pg_database)
        deadline = time.monotonic() + 30
        while writer.fenced is None:  # the next heartbeat finds the lease expired
            assert time.monotonic() < deadline, "the heartbeat never noticed"
            time.sleep(0.05)  # polling interval
        store.record(SubtaskStarted(run_id="r1", round=1, subtask_id="a", action="x"))
        with pytest.raises(StoreError, match=EXPIRED):
            store.flush()
    assert stored_types(pg_database, "r1") == ["run_started"]


@pytest.mark.anyio
async def test_the_durable_executor_starts_no_attempt_once_fenced(pg_database: str) -> None:
    ran: list[str] = []

    @tool
    async def freeze(x: int) -> int:
        """Runs, then the process 'freezes' past its lease (the database expires it)."""
        ran.append("freeze")
        await anyio.to_thread.run_sync(expire_leases, pg_database)
        return x

    @tool
    async def after(x: int) -> int:
        """Must not run: another process may be running this run by now."""
        ran.append("after")
        return x

    plan = Plan(
        subtasks=[
            Subtask(id="a", action="freeze", arguments={"x": 1}),
            Subtask(id="b", action="after", arguments={"x": {"from": "a.output"}}),
        ]
    )
    with RunStore(pg_database, lease_s=60) as store:
        orch = Orchestrator([freeze, after], StaticPlanner(plan), executor=store.executor())
        result = await orch.run(on_event=store.listener())
        with pytest.raises(StoreError, match=EXPIRED):
            await store.aflush()
    assert ran == ["freeze"]
    # b never ran, and the run says why (its answer was b's output: it failed)
    assert result.status == "failed" and EXPIRED in (result.error or "")
    assert result.subtasks["b"].status == "cancelled"
    assert EXPIRED in (result.subtasks["b"].error.message if result.subtasks["b"].error else "")
