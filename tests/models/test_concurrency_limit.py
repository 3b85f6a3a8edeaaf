"""ConcurrencyLimitedModel: one limit shared by every caller of the wrapper object.
Requests are held in flight by gates the test opens one at a time."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from paraloom.models import (
    CascadeModel,
    Completion,
    ConcurrencyLimitedModel,
    ModelClient,
    ModelError,
    ModelRequest,
    RetryingModel,
    RetryPolicy,
)
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.testing import FunctionModel, ScriptedModel

REQ = ModelRequest(model="m", messages=(ChatMessage(role="user", content="hi"),), max_tokens=5)


async def settle() -> None:
    """Return once every other task is blocked (the checkpoints only make it quick)."""
    for _ in range(50):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


class GatedModel:
    """A model whose requests stay in flight until the test opens their gate."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.pending: list[anyio.Event] = []
        self.models: list[str] = []

    async def complete(self, request: ModelRequest) -> Completion:
        gate = anyio.Event()
        self.pending.append(gate)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.models.append(request.model)
        try:
            await gate.wait()
        finally:
            self.in_flight -= 1
        return Completion(message=ChatMessage(role="assistant", content="A"), model=request.model)

    def open_oldest(self) -> None:
        self.pending.pop(0).set()


@pytest.mark.anyio
async def test_bounds_requests_in_flight_across_concurrent_callers() -> None:
    inner = GatedModel()
    limited = ConcurrencyLimitedModel(inner, 2)
    answers: list[str | None] = []

    async def caller() -> None:
        answers.append((await limited.complete(REQ)).content)

    with anyio.fail_after(10):  # a hang guard, not a timing assertion
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(caller)
            await settle()
            assert inner.in_flight == 2
            assert limited.limit.limiter().statistics().tasks_waiting == 3
            for opened in range(1, 6):
                inner.open_oldest()
                await settle()
                assert inner.in_flight == min(2, 5 - opened)
    assert inner.peak == 2
    assert answers == ["A"] * 5
    assert limited.max_concurrency == 2


@pytest.mark.anyio
async def test_a_retry_wait_holds_no_slot() -> None:
    flaky = ScriptedModel([ModelError("m", "busy", status=429, retryable=True), "ok"])
    limited = ConcurrencyLimitedModel(flaky, 1)
    borrowed_while_waiting: list[float] = []

    async def sleep(seconds: float) -> None:
        borrowed_while_waiting.append(limited.limit.limiter().statistics().borrowed_tokens)
        await anyio.lowlevel.checkpoint()

    model = RetryingModel(limited, RetryPolicy(attempts=2, sleep=sleep))
    assert (await model.complete(REQ)).content == "ok"
    assert borrowed_while_waiting == [0]
    assert len(flaky.requests) == 2


@pytest.mark.anyio
async def test_errors_and_cancellation_release_the_slot() -> None:
    failing = ConcurrencyLimitedModel(ScriptedModel([ModelError("m", "bad", status=400)]), 1)
    with pytest.raises(ModelError, match="bad"):
        await failing.complete(REQ)
    assert failing.limit.limiter().statistics().borrowed_tokens == 0

    inner = GatedModel()
    limited = ConcurrencyLimitedModel(inner, 1)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(limited.complete, REQ)
            await settle()
            assert inner.in_flight == 1
            tg.cancel_scope.cancel()
    assert limited.limit.limiter().statistics().borrowed_tokens == 0
    echo = ConcurrencyLimitedModel(FunctionModel(lambda r: "again"), 1)
    assert (await echo.complete(REQ)).content == "again"


def _member(name: str, client: ModelClient) -> tuple[ModelDescriptor, ModelClient]:
    return ModelDescriptor(name=name, provider="openai", model_id=f"{name}-id"), client


@pytest.mark.anyio
async def test_a_cascade_obeys_its_members_limits() -> None:
    # both probes are served by one limited client: they take turns, and the cascade
    # (a composite, not wrapped itself) still answers
    inner = GatedModel()
    shared = ConcurrencyLimitedModel(inner, 1)
    cascade = CascadeModel(
        [_member("p1", shared), _member("p2", shared)], _member("big", GatedModel())
    )
    answers: list[str | None] = []

    async def caller() -> None:
        answers.append((await cascade.complete(REQ)).content)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
            for _ in range(2):
                await settle()
                assert inner.in_flight == 1
                inner.open_oldest()
    assert answers == ["A"]
    assert inner.peak == 1
    assert sorted(inner.models) == ["p1-id", "p2-id"]


def test_refuses_a_cascade_and_bad_limits() -> None:
    cascade = CascadeModel(
        [_member("p1", GatedModel()), _member("p2", GatedModel())], _member("big", GatedModel())
    )
    with pytest.raises(TypeError, match="wrap each member client instead"):
        ConcurrencyLimitedModel(cascade, 2)
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        ConcurrencyLimitedModel(GatedModel(), 0)
    with pytest.raises(TypeError, match="must be an int"):
        ConcurrencyLimitedModel(GatedModel(), 1.5)  # type: ignore[arg-type]


def test_one_wrapper_serves_successive_event_loops() -> None:
    limited = ConcurrencyLimitedModel(FunctionModel(lambda r: "hello"), 1)

    async def ask() -> str | None:
        return (await limited.complete(REQ)).content

    assert anyio.run(ask) == "hello"
    assert anyio.run(ask) == "hello"
