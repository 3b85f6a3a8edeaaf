"""The PostgreSQL run store survives a lost connection (a server restart, a failover, a
network blip): the writer reconnects and re-sends its batch — never twice — and keeps
renewing its lease; past the reconnection window the error surfaces at ``flush()``."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import pytest

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.protocols.events import Event, RunStarted
from paraloom.store import RunStore, StoreError
from paraloom.store.db import Db
from paraloom.testing.postgres import PostgresServer, PostgresUnavailable, scratch_database
from tests.store.conftest import query

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

DEADLINE_S = 60.0


def _server() -> PostgresServer:
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    return server


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A server of this module's own: its tests restart it."""
    server = _server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def url(pg: PostgresServer) -> Iterator[str]:
    with scratch_database(pg.url) as database:
        yield database


def _emit_seqs(url: str) -> list[int]:
    """Every stored event's number, in commit order (one writer session per test)."""
    assert len(query(url, "SELECT DISTINCT session FROM events")) == 1
    return [int(row[0]) for row in query(url, "SELECT emit_seq FROM events ORDER BY id")]


@pytest.mark.anyio
async def test_a_server_restart_mid_run_loses_and_duplicates_nothing(
    pg: PostgresServer, url: str
) -> None:
    restarted = anyio.Event()

    @tool
    async def step(x: int) -> int:
        return x + 1

    @tool
    async def restart(x: int) -> int:
        await anyio.to_thread.run_sync(pg.restart)  # cuts every connection of the store
        restarted.set()
        return x + 1

    ids = ["s1", "s2", "s3", "s4", "s5"]
    plan = Plan(
        subtasks=tuple(
            Subtask(
                id=sid,
                action="restart" if sid == "s3" else "step",
                arguments={"x": 0 if k == 0 else {"from": f"{ids[k - 1]}.output"}},
            )
            for k, sid in enumerate(ids)
        )
    )
    seen: list[Event] = []
    with RunStore(url) as store:
        orch = Orchestrator(
            [step, restart],
            StaticPlanner(plan, output={"from": "s5.output"}),
            listeners=[store.listener()],
            executor=store.executor(),  # s4 waits for s3's finish: committed after the restart
        )
        result = await orch.run({"n": 0}, on_event=seen.append)
        assert restarted.is_set()
        assert result.ok and result.output == 5
        await store.aflush()  # raises if an event was not stored

        # every event once, in emission order: 1..N, no gap, no duplicate
        assert _emit_seqs(url) == list(range(1, len(seen) + 1))
        assert store.events(result.run_id) == seen
        run = store.get_run(result.run_id)  # the read connection reconnected too
        assert run.status == "ok"
        assert [(s.subtask_id, s.executions) for s in run.subtasks] == [(i, 1) for i in ids]
        state = store.resume_state(result.run_id)
        assert sorted(state.results) == ids
        assert [state.results[i].output for i in ids] == [1, 2, 3, 4, 5]


def test_a_commit_whose_acknowledgement_was_lost_is_not_stored_twice(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    real = Db.write_batch
    batches: list[int] = []

    def commit_then_lose(self: Db, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        real(self, statements)  # the COMMIT reached the server …
        batches.append(1)
        if len(batches) == 2:  # … but the client never saw it, for the second batch
            self.raw.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Db, "write_batch", commit_then_lose)
    with RunStore(url) as store:
        store.record(RunStarted(run_id="r_1", workflow="w"))
        store.flush()
        for n in range(2, 6):
            store.record(RunStarted(run_id=f"r_{n}", workflow="w"))
        store.flush()  # no error: reconnected, and the batch was there already
        store.record(RunStarted(run_id="r_6", workflow="w"))
        store.flush()
        assert len(batches) >= 3  # the lost batch was not written again
        assert _emit_seqs(url) == [1, 2, 3, 4, 5, 6]
        assert len(store.list_runs()) == 6


def test_a_lease_is_renewed_after_a_server_restart(pg: PostgresServer, url: str) -> None:
    # a lease longer than the restart: one that expired meanwhile is not renewed (the
    # writer is fenced: tests/store/test_fence.py)
    lease = 3.0
    with RunStore(url, lease_s=lease) as store:
        store.record(RunStarted(run_id="r_live", workflow="w"))
        store.flush()
        pg.restart()
        restarted_at = float(query(url, "SELECT EXTRACT(EPOCH FROM clock_timestamp())")[0][0])
        deadline = time.monotonic() + DEADLINE_S
        # no event after the restart: only the heartbeat can renew the lease, past what
        # any renewal before the restart gave
        while float(query(url, "SELECT MAX(expires_at) FROM sessions")[0][0]) <= (
            restarted_at + lease
        ):
            assert time.monotonic() < deadline, "the lease was not renewed after the restart"
            time.sleep(0.05)  # polling interval
        run = store.get_run("r_live")
        assert (run.status, run.writer_alive) == ("running", True)


def test_an_unreachable_database_is_reported_at_flush_after_the_window() -> None:
    server = _server()
    try:
        with RunStore(server.url, reconnect_s=1.0, connect_timeout_s=1.0) as store:
            store.record(RunStarted(run_id="r_1", workflow="w"))
            store.flush()
            server.stop()  # gone for good
            store.record(RunStarted(run_id="r_2", workflow="w"))
            started = time.monotonic()
            with pytest.raises(StoreError, match="connection was lost") as lost:
                store.flush()
            assert time.monotonic() - started < 20.0  # bounded: the window, then give up
            assert "run_started of run r_2" in str(lost.value)
            # nothing after the lost batch is written (no gap), and it says so at once
            store.record(RunStarted(run_id="r_3", workflow="w"))
            with pytest.raises(StoreError, match="connection was lost"):
                store.flush(timeout=5.0)
    finally:
        server.stop()
