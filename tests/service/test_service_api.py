"""The service example's HTTP API over plain function tools."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest

pytest.importorskip("fastapi", reason='needs the service extra: pip install "paraloom[service]"')

from paraloom_service import create_app

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.store import RunStore

from .conftest import parse_sse, serve

pytestmark = pytest.mark.anyio


@tool
async def words(text: str) -> list[str]:
    return text.split()


@tool
async def count(items: list[str]) -> int:
    return len(items)


def wordcount() -> Orchestrator:
    plan = Plan(
        subtasks=(
            Subtask(id="split", action="words", arguments={"text": {"from": "input.text"}}),
            Subtask(id="n", action="count", arguments={"items": {"from": "split.output"}}),
        )
    )
    return Orchestrator([words, count], StaticPlanner(plan), name="wordcount")


class Blocker:
    """An async tool that tells the test it runs, then waits to be cancelled."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.cancelled = anyio.Event()

        @tool
        async def block(x: int) -> int:
            self.started.set()
            try:
                await anyio.Event().wait()  # only cancellation ends this
            except anyio.get_cancelled_exc_class():
                self.cancelled.set()
                raise
            return x

        self.tool = block

    def orchestrator(self) -> Orchestrator:
        plan = Plan(subtasks=(Subtask(id="wait", action="block", arguments={"x": 1}),))
        return Orchestrator([self.tool], StaticPlanner(plan), name="blocking")


async def test_start_stream_and_result() -> None:
    app = create_app({"wordcount": wordcount()})
    async with serve(app) as client:
        started = await client.post("/runs", json={"task": {"text": "a b c"}, "budget_usd": "0.5"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        stream = await client.get(f"/runs/{run_id}/events")
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = parse_sse(stream.text)
        assert [f["id"] for f in frames] == list(range(len(frames)))
        assert frames[0]["event"] == "run_started"
        assert Decimal(frames[0]["data"]["budget_usd"]) == Decimal("0.5")
        assert frames[-1]["event"] == "run_finished"
        assert {f["data"]["run_id"] for f in frames} == {run_id}
        result = await client.get(f"/runs/{run_id}/result")
        assert result.status_code == 200
        body = result.json()
        assert (body["run_id"], body["status"], body["output"]) == (run_id, "ok", 3)
        status = (await client.get(f"/runs/{run_id}")).json()
        assert (status["status"], status["source"], status["events"]) == (
            "ok",
            "memory",
            len(frames),
        )
        listed = (await client.get("/runs")).json()
        assert [r["run_id"] for r in listed] == [run_id]


async def test_events_resume_after_last_event_id() -> None:
    app = create_app({"wordcount": wordcount()})
    async with serve(app) as client:
        run_id = (await client.post("/runs", json={"task": {"text": "x y"}})).json()["run_id"]
        full = parse_sse((await client.get(f"/runs/{run_id}/events")).text)
        resumed = parse_sse(
            (await client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "2"})).text
        )
        assert resumed == full[3:]
        after = parse_sse((await client.get(f"/runs/{run_id}/events?after=1")).text)
        assert after == full[1:]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"task": 1, "budget_usd": "-1"}, 422, "budget_usd"),
        ({"task": 1, "budget_usd": "lots"}, 422, "budget_usd"),
        ({"task": 1, "surprise": True}, 422, "surprise"),
        ({"task": 1, "workflow": "nope"}, 400, "workflow: unknown workflow 'nope'"),
        ({"task": 1, "router": "nope"}, 400, "router: unknown router 'nope'"),
        ({"task": 1, "budget_usd": "5"}, 400, "budget_usd: 5 is above"),
    ],
)
async def test_bad_requests_say_where_and_what(
    body: dict[str, object], status: int, needle: str
) -> None:
    app = create_app({"wordcount": wordcount()}, max_budget_usd=Decimal(1))
    async with serve(app) as client:
        response = await client.post("/runs", json=body)
        assert response.status_code == status
        assert needle in response.text
        assert (await client.get("/runs")).json() == []


async def test_unknown_runs_are_404() -> None:
    app = create_app({"wordcount": wordcount()})
    async with serve(app) as client:
        for method, path in [
            ("GET", "/runs/run_missing"),
            ("GET", "/runs/run_missing/result"),
            ("GET", "/runs/run_missing/events"),
            ("DELETE", "/runs/run_missing"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 404, (method, path)
            assert "run_missing" in response.text


async def test_delete_cancels_a_running_run() -> None:
    blocker = Blocker()
    app = create_app({"blocking": blocker.orchestrator()})
    async with serve(app) as client:
        run_id = (await client.post("/runs", json={"task": None})).json()["run_id"]
        await blocker.started.wait()
        pending = await client.get(f"/runs/{run_id}/result")
        assert pending.status_code == 202
        assert pending.json()["status"] == "running"
        deleted = await client.delete(f"/runs/{run_id}")
        assert deleted.status_code == 202
        frames = parse_sse((await client.get(f"/runs/{run_id}/events")).text)
        assert blocker.cancelled.is_set()  # the tool itself was cancelled, not abandoned
        assert frames[-1]["event"] == "run_finished"
        assert frames[-1]["data"]["status"] == "cancelled"
        result = (await client.get(f"/runs/{run_id}/result")).json()
        assert result["status"] == "cancelled"
        assert result["subtasks"]["wait"]["status"] == "cancelled"
        again = await client.delete(f"/runs/{run_id}")
        assert again.status_code == 409


async def test_shutdown_cancels_runs_still_going() -> None:
    blocker = Blocker()
    app = create_app({"blocking": blocker.orchestrator()})
    async with serve(app) as client:
        await client.post("/runs", json={"task": None})
        await blocker.started.wait()
    assert blocker.cancelled.is_set()


async def test_finished_runs_are_read_back_from_the_store(tmp_path: Path) -> None:
    store = await anyio.to_thread.run_sync(RunStore, tmp_path / "runs.sqlite")
    try:
        first = create_app({"wordcount": wordcount()}, store=store)
        async with serve(first) as client:
            run_id = (await client.post("/runs", json={"task": {"text": "one two"}})).json()[
                "run_id"
            ]
            live = parse_sse((await client.get(f"/runs/{run_id}/events")).text)
        # a fresh service (say, after a restart) knows the run only through the store
        second = create_app({"wordcount": wordcount()}, store=store)
        async with serve(second) as client:
            assert (await client.get("/runs")).json() == []
            status = (await client.get(f"/runs/{run_id}")).json()
            assert (status["status"], status["source"]) == ("ok", "store")
            result = (await client.get(f"/runs/{run_id}/result")).json()
            assert (result["status"], result["output"], result["source"]) == ("ok", 2, "store")
            replay = parse_sse((await client.get(f"/runs/{run_id}/events")).text)
            assert replay == live
            assert (await client.delete(f"/runs/{run_id}")).status_code == 404
    finally:
        await anyio.to_thread.run_sync(store.close)


async def test_old_finished_runs_are_dropped_from_memory() -> None:
    app = create_app({"wordcount": wordcount()}, keep_finished=1)
    async with serve(app) as client:
        ids = []
        for text in ("a", "b c"):
            run_id = (await client.post("/runs", json={"task": {"text": text}})).json()["run_id"]
            await client.get(f"/runs/{run_id}/events")  # wait for the end
            ids.append(run_id)
        assert (await client.get(f"/runs/{ids[0]}")).status_code == 404
        assert (await client.get(f"/runs/{ids[1]}/result")).json()["output"] == 2
