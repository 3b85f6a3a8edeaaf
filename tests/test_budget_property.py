"""Property: many concurrent DAGs of LLM calls against one tight budget never make the
*provider* bill past the limit, and every reservation is returned (also when calls fail,
time out or are cancelled).

The fake provider keeps its own ledger and bills like the real ones can: input tokens
up to one per UTF-8 byte plus framing (prompts mix ASCII, digits, CJK and emoji), any
output up to ``max_tokens``, and requests its client abandoned (a client timeout, a
cancelled task group) are finished and billed all the same. Nothing in it is bounded by
paraloom's own reservation, so "no overspend" is a real check."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal

import anyio
import anyio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paraloom.models import ModelCall, ModelError, ModelPool, ModelRequest, call_model
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.budget import Budget, BudgetExhausted
from paraloom.runtime.context import ActionContext
from paraloom.testing import FunctionModel, Reply

MODELS = [
    ModelDescriptor(
        name="cheap", input_price_per_m=Decimal("0.5"), output_price_per_m=Decimal("1.5")
    ),
    ModelDescriptor(name="mid", input_price_per_m=Decimal(3), output_price_per_m=Decimal(15)),
    ModelDescriptor(name="dear", input_price_per_m=Decimal(30), output_price_per_m=Decimal(60)),
]


@dataclass(frozen=True)
class Node:
    deps: tuple[int, ...]
    model: str
    prompt_chars: int
    alphabet: str  # "y", "語" (3 bytes), "🙂" (4 bytes) or digits
    max_tokens: int
    output_share: float  # fraction of max_tokens actually produced
    input_share: float  # fraction of the densest possible input count actually billed
    checkpoints: int  # scheduling points inside the "provider"
    fails: bool
    times_out: bool  # the provider bills, the client sees a timeout
    cancels_group: bool


@st.composite
def groups(draw: st.DrawFn) -> list[list[Node]]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        nodes: list[Node] = []
        for i in range(draw(st.integers(1, 7))):
            deps = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True)) if i else []
            nodes.append(
                Node(
                    deps=tuple(deps),
                    model=draw(st.sampled_from([m.name for m in MODELS])),
                    prompt_chars=draw(st.integers(0, 3000)),
                    alphabet=draw(st.sampled_from(["y", "語", "🙂", "1234567890"])),
                    max_tokens=draw(st.integers(1, 800)),
                    output_share=draw(st.floats(0, 1)),
                    input_share=draw(st.floats(0.3, 1)),
                    checkpoints=draw(st.integers(0, 4)),
                    fails=draw(st.booleans()) and draw(st.booleans()),
                    times_out=draw(st.integers(0, 5)) == 0,
                    cancels_group=draw(st.integers(0, 9)) == 0,
                )
            )
        out.append(nodes)
    return out


def dense_tokens(request: ModelRequest) -> int:
    """The most input tokens a byte-level BPE provider can count: one per UTF-8 byte,
    plus 4 framing tokens per message and 3 priming the reply."""
    text = sum(len((m.content or "").encode()) for m in request.messages)
    return text + 4 * len(request.messages) + 3


async def run_all(dags: list[list[Node]], budget: Budget) -> tuple[list[ModelCall], Decimal]:
    node_of: dict[str, Node] = {}
    prices = {m.name: m for m in MODELS}
    ledger = [Decimal(0)]  # what the provider billed

    def bill(request: ModelRequest, node: Node) -> None:
        assert request.max_tokens is not None
        ledger[0] += prices[request.model].cost(
            int(dense_tokens(request) * node.input_share),
            int(request.max_tokens * node.output_share),
        )

    async def provider(request: ModelRequest) -> Reply:
        node = node_of[request.messages[0].content or ""]
        if node.fails:
            raise ModelError(request.model, "injected", status=500, retryable=True)
        try:
            for _ in range(node.checkpoints):
                await anyio.lowlevel.checkpoint()
        except BaseException:
            bill(request, node)  # the client went away; the provider finishes and bills
            raise
        bill(request, node)
        if node.times_out:
            raise ModelError(request.model, "timed out", maybe_billed=True)
        assert request.max_tokens is not None
        return Reply(
            "x",
            input_tokens=int(dense_tokens(request) * node.input_share),
            output_tokens=int(request.max_tokens * node.output_share),
        )

    pool = ModelPool(MODELS, client=FunctionModel(provider))
    context = ActionContext(run_id="run", budget=budget)
    done: list[ModelCall] = []

    async def run_group(g: int, nodes: list[Node]) -> None:
        finished = [anyio.Event() for _ in nodes]
        async with anyio.create_task_group() as tg:

            async def run_node(i: int, node: Node) -> None:
                try:
                    for d in node.deps:
                        await finished[d].wait()
                    key = f"g{g}n{i}"
                    node_of[key] = node
                    messages = [
                        ChatMessage(role="system", content=key),
                        ChatMessage(
                            role="user",
                            content=(node.alphabet * node.prompt_chars)[: node.prompt_chars],
                        ),
                    ]
                    with contextlib.suppress(BudgetExhausted, ModelError):
                        done.append(
                            await call_model(
                                pool,
                                context,
                                messages,
                                default_model=node.model,
                                max_tokens=node.max_tokens,
                            )
                        )
                    if node.cancels_group:
                        tg.cancel_scope.cancel()
                finally:
                    finished[i].set()

            for i, node in enumerate(nodes):
                tg.start_soon(run_node, i, node)

    async with anyio.create_task_group() as tg:
        for g, nodes in enumerate(dags):
            tg.start_soon(run_group, g, nodes)
    return done, ledger[0]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags=groups(), limit_micro=st.integers(0, 60_000), max_calls=st.none() | st.integers(1, 20))
def test_shared_budget_never_overspends_and_never_leaks(
    dags: list[list[Node]], limit_micro: int, max_calls: int | None
) -> None:
    limit = Decimal(limit_micro) / 1_000_000
    budget = Budget(limit, max_calls=max_calls)
    done, billed = anyio.run(run_all, dags, budget)
    assert billed <= limit  # the provider's own books
    assert billed <= budget.spent_usd <= limit  # abandoned calls are held at their worst case
    assert budget.reserved_usd == 0
    assert budget.tokens_reserved == 0 and budget.calls_reserved == 0
    assert budget.spent_usd >= sum((c.cost_usd for c in done), Decimal(0))
    assert max_calls is None or budget.calls_made <= max_calls
    assert budget.overrun_usd == 0
