"""CascadeModel: probes in parallel, escalation on disagreement, exact cost accounting."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

import paraloom
from paraloom.agents import LLMAgent
from paraloom.models import (
    CascadeModel,
    CascadeOutcome,
    Completion,
    CompositeClient,
    ModelError,
    ModelPool,
    ModelRequest,
    answers_agree,
    call_model,
    cascade_descriptor,
    cascade_name,
    normalize_answer,
)
from paraloom.protocols.actions import ActionCall, ActionStatus
from paraloom.protocols.events import Event, LLMCallFinished, LLMCallStarted, UsageAnomaly
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.budget import Budget, BudgetExhausted
from paraloom.runtime.context import ActionContext
from paraloom.testing import FunctionModel, Reply, ScriptedModel, tool_call

P1 = ModelDescriptor(
    name="p1",
    model_id="p1-v1",
    input_price_per_m=Decimal("0.1"),
    output_price_per_m=Decimal("0.4"),
    context_window=16_000,
    max_output_tokens=4096,
)
P2 = ModelDescriptor(name="p2", input_price_per_m=Decimal("0.2"), output_price_per_m=Decimal("0.8"))
BIG = ModelDescriptor(
    name="big",
    model_id="big-v2",
    input_price_per_m=Decimal("3"),
    output_price_per_m=Decimal("15"),
    context_window=128_000,
)
MSGS = (ChatMessage(role="user", content="Which option? A, B, C or D"),)
REQUEST = ModelRequest(model="cascade", messages=MSGS, max_tokens=20)


def reply(content: str, tin: int = 100, tout: int = 5) -> Reply:
    return Reply(content, input_tokens=tin, output_tokens=tout)


def never(request: ModelRequest) -> Reply:
    raise AssertionError("the escalation model must not be called")


def cascade(a: Any, b: Any, e: Any, **kw: Any) -> CascadeModel:
    return CascadeModel([(P1, a), (P2, b)], (BIG, e), **kw)


def ctx(events: list[Event], budget: Budget | None = None) -> ActionContext:
    return ActionContext(run_id="run_1", emit=events.append, budget=budget, call_id="call_1")


# --- normalize_answer / answers_agree ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("  \n ", None),
        ("...", None),
        ("A", "A"),
        ("A)", "A"),
        (" B\n", "B"),
        ("Answer: D", "D"),
        ("answer: C.", "C"),
        ("The answer is B.", "B"),
        ("['C\\n']", "C"),  # RouterBench: list repr with an escaped newline
        ("['C\n']", "C"),  # … or a raw one (not valid Python: fallback path)
        ('["D"]', "D"),
        ("['Paris is the capital.']", "paris is the capital"),
        ("(C) Paris", "C"),
        ("B. Because it is", "B"),
        ("E: 42", "E"),
        ("**B**", "B"),
        ("D\n\nExplanation: ...", "D"),
        ("A cat sat.", "a cat sat"),  # a bare letter must end its line to be a choice
        ("F)", "f"),  # only A–E are choices
        ("a)", "a"),  # only capitals
        ("Answers vary", "answers vary"),
        ('  "Hello,\n   World!"  ', "hello, world"),
        ("[1, 2]", "1, 2"),
    ],
)
def test_normalize_answer(text: str | None, expected: str | None) -> None:
    assert normalize_answer(text) == expected


def completion(content: str | None = None, calls: tuple[Any, ...] = ()) -> Completion:
    return Completion(
        message=ChatMessage(role="assistant", content=content, tool_calls=calls), model="m"
    )


def test_answers_agree_on_text() -> None:
    assert answers_agree([completion("A)"), completion(" A\n"), completion("Answer: A")])
    assert answers_agree([completion("Paris."), completion("paris")])
    assert not answers_agree([completion("A"), completion("B")])
    assert not answers_agree([completion(""), completion("")])  # empty never agrees
    assert not answers_agree([completion(None), completion(None)])
    assert not answers_agree([])


def test_answers_agree_on_tool_calls() -> None:
    x = tool_call("search", {"q": "x", "n": 2}, id="1")
    x_again = tool_call("search", raw='{ "n": 2, "q": "x" }', id="2")  # other id, key order
    y = tool_call("fetch", {"url": "u"})
    assert answers_agree([completion(calls=(x, y)), completion(calls=(y, x_again))])
    assert not answers_agree([completion(calls=(x,)), completion(calls=(x, y))])
    assert not answers_agree([completion(calls=(x,)), completion(calls=(y,))])
    assert not answers_agree([completion(calls=(x,)), completion("search")])
    z = tool_call("search", {"q": "z", "n": 2})
    assert not answers_agree([completion(calls=(x,)), completion(calls=(z,))])


# --- descriptor ---------------------------------------------------------------------------


def test_descriptor_sums_prices_and_takes_smallest_limits() -> None:
    model = cascade(ScriptedModel([]), ScriptedModel([]), ScriptedModel([]))
    d = model.descriptor
    assert d.name == "cascade(p1+p2>big)" == cascade_name(["p1", "p2"], "big")
    assert d.provider == "cascade"
    assert d.input_price_per_m == Decimal("3.3") and d.output_price_per_m == Decimal("16.2")
    assert d.context_window == 8192 and d.max_output_tokens == 4096
    assert "p1" in d.description and "big" in d.description
    # the worst case at summed prices is exactly every member's worst case
    assert d.cost(1000, 50) == P1.cost(1000, 50) + P2.cost(1000, 50) + BIG.cost(1000, 50)
    assert cascade_descriptor([P1, P2], BIG, name="quick").name == "quick"
    assert isinstance(model, CompositeClient) and model.max_calls_per_request == 3
    assert CascadeModel([(P1, FunctionModel(never))] * 2, (BIG, FunctionModel(never)))


def test_needs_two_probes_and_a_distinct_escalation() -> None:
    s = ScriptedModel([])
    with pytest.raises(ValueError, match="at least two probes"):
        CascadeModel([(P1, s)], (BIG, s))
    with pytest.raises(ValueError, match="cannot also be a probe"):
        CascadeModel([(P1, s), (P2, s)], (P2, s))


# --- the two paths ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_agreement_returns_first_probe_without_escalating() -> None:
    a, b = ScriptedModel([reply("A) Paris", 100, 5)]), ScriptedModel([reply(" A\n", 120, 2)])
    e = FunctionModel(never)
    out = await cascade(a, b, e).complete(REQUEST)
    assert out.content == "A) Paris"  # the first probe's message, verbatim
    assert out.model == "p1-v1"  # as that provider reported it
    assert e.requests == []
    assert out.usage.input_tokens == 220 and out.usage.output_tokens == 7
    assert out.usage.calls == 2
    assert out.cost_usd == P1.cost(100, 5) + P2.cost(120, 2)
    assert out.cascade == CascadeOutcome(
        cascade="cascade(p1+p2>big)",
        probes=("p1", "p2"),
        answers=("A", "A"),
        probe_errors=(None, None),
        escalated=False,
        answered_by="p1",
    )
    # every member got the same request, renamed to its provider model
    assert [r.model for r in a.requests + b.requests] == ["p1-v1", "p2"]
    assert a.requests[0].messages == MSGS and a.requests[0].max_tokens == 20


@pytest.mark.anyio
async def test_disagreement_escalates_and_costs_all_three() -> None:
    a, b = ScriptedModel([reply("A", 100, 1)]), ScriptedModel([reply("B", 100, 1)])
    e = ScriptedModel([reply("C) because", 100, 9)])
    out = await cascade(a, b, e).complete(REQUEST)
    assert out.content == "C) because" and out.model == "big-v2"
    assert [r.model for r in e.requests] == ["big-v2"]
    assert out.usage.input_tokens == 300 and out.usage.output_tokens == 11
    assert out.usage.calls == 3
    assert out.cost_usd == P1.cost(100, 1) + P2.cost(100, 1) + BIG.cost(100, 9)
    assert out.cascade is not None
    assert out.cascade.escalated and out.cascade.answered_by == "big"
    assert out.cascade.answers == ("A", "B")


@pytest.mark.anyio
async def test_tool_call_agreement() -> None:
    a = ScriptedModel([Reply.calls(tool_call("f", {"x": 1}, id="a1"))])
    b = ScriptedModel([Reply.calls(tool_call("f", {"x": 1}, id="b1"))])
    out = await cascade(a, b, FunctionModel(never)).complete(REQUEST)
    assert [c.id for c in out.tool_calls] == ["a1"]
    assert out.cascade is not None and out.cascade.answers == (None, None)


@pytest.mark.anyio
async def test_custom_agreement_rule() -> None:
    a, b = ScriptedModel([reply("A")]), ScriptedModel([reply("B")])
    out = await cascade(a, b, FunctionModel(never), agree=lambda cs: True).complete(REQUEST)
    assert out.content == "A"


@pytest.mark.anyio
async def test_failed_probe_escalates() -> None:
    a = ScriptedModel([ModelError("p1-v1", "overloaded", status=503, retryable=True)])
    b = ScriptedModel([reply("A", 50, 1)])
    e = ScriptedModel([reply("A", 60, 2)])
    out = await cascade(a, b, e).complete(REQUEST)
    assert out.content == "A" and out.model == "big-v2"
    assert out.usage.calls == 2  # the failed probe is not billed
    assert out.cost_usd == P2.cost(50, 1) + BIG.cost(60, 2)
    assert out.cascade is not None and out.cascade.escalated
    error = out.cascade.probe_errors[0]
    assert error is not None and "overloaded" in error and out.cascade.probe_errors[1] is None


@pytest.mark.anyio
async def test_escalation_error_propagates_with_notes_and_spent_cost() -> None:
    a = ScriptedModel([ModelError("p1-v1", "boom", status=500)])
    b = ScriptedModel([reply("B", 50, 1)])
    e = ScriptedModel([ModelError("big-v2", "down", status=502, retryable=True)])
    with pytest.raises(ModelError, match="down") as info:
        await cascade(a, b, e).complete(REQUEST)
    exc = info.value
    assert exc.retryable and exc.status == 502
    assert any("probe failed" in n and "boom" in n for n in exc.__notes__)
    assert exc.cost_usd == P2.cost(50, 1)
    assert exc.usage is not None and exc.usage.calls == 1


@pytest.mark.anyio
async def test_all_failing_spends_nothing() -> None:
    fail = [ModelError("x", "no")]
    with pytest.raises(ModelError) as info:
        await cascade(ScriptedModel(fail), ScriptedModel(fail), ScriptedModel(fail)).complete(
            REQUEST
        )
    assert info.value.cost_usd is None and len(info.value.__notes__) == 2


@pytest.mark.anyio
async def test_probes_run_concurrently() -> None:
    started = [0]
    both = anyio.Event()

    async def probe(request: ModelRequest) -> Reply:
        started[0] += 1
        if started[0] == 2:
            both.set()
        await both.wait()  # deadlocks if the probes ran one after the other
        return reply("A")

    with anyio.fail_after(5):
        out = await cascade(
            FunctionModel(probe), FunctionModel(probe), FunctionModel(never)
        ).complete(REQUEST)
    assert out.content == "A" and started[0] == 2


@pytest.mark.anyio
async def test_concurrent_calls_keep_their_own_outcomes() -> None:
    """No per-call state on the instance: interleaved calls do not mix."""
    gate = anyio.Event()

    async def probe(request: ModelRequest) -> Reply:
        text = request.messages[0].content or ""
        if text == "agree":
            await gate.wait()  # finish after the other call
            return reply("A")
        gate.set()
        return reply("A" if request.model == "p1-v1" else "B")

    def big(request: ModelRequest) -> Reply:
        return reply("D")

    model = cascade(FunctionModel(probe), FunctionModel(probe), FunctionModel(big))
    results: dict[str, Completion] = {}

    async def run(text: str) -> None:
        results[text] = await model.complete(
            REQUEST.model_copy(update={"messages": (ChatMessage(role="user", content=text),)})
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "agree")
            tg.start_soon(run, "disagree")
    assert results["agree"].cascade is not None and not results["agree"].cascade.escalated
    assert results["disagree"].cascade is not None and results["disagree"].cascade.escalated
    assert results["disagree"].content == "D"


# --- through call_model and the budget ------------------------------------------------------


def pool_with(model: CascadeModel) -> ModelPool:
    return ModelPool().add(model.descriptor, model)


@pytest.mark.anyio
@pytest.mark.parametrize("agree", [True, False])
async def test_call_model_settles_the_exact_cost(agree: bool) -> None:
    a, b = ScriptedModel([reply("A", 20, 3)]), ScriptedModel([reply("A" if agree else "B", 25, 4)])
    e = ScriptedModel([reply("C", 30, 6)])
    model = cascade(a, b, e)
    budget = Budget("1.00")
    events: list[Event] = []
    mc = await call_model(
        pool_with(model), ctx(events, budget), MSGS, default_model=model.name, max_tokens=20
    )
    expected = P1.cost(20, 3) + P2.cost(25, 4) + (Decimal(0) if agree else BIG.cost(30, 6))
    assert mc.cost_usd == expected == budget.spent_usd
    assert budget.reserved_usd == 0 and budget.tokens_reserved == 0 and budget.calls_reserved == 0
    assert budget.calls_made == mc.usage.calls == (2 if agree else 3)
    assert budget.tokens_used == mc.usage.total_tokens
    assert mc.model == model.name
    started, finished = events
    assert isinstance(started, LLMCallStarted) and isinstance(finished, LLMCallFinished)
    assert finished.cost_usd == mc.cost_usd  # events report the settled number
    assert started.provider == "cascade"
    assert expected <= started.reserved_usd


@pytest.mark.anyio
@pytest.mark.parametrize("agree", [True, False])
async def test_worst_case_cost_never_exceeds_the_reservation(agree: bool) -> None:
    """Members bill as a densest-possible byte-level tokenizer would (one token per UTF-8
    byte of the request plus OpenAI's framing, see :func:`dense_tokens`) and every
    ``max_tokens`` allowed: the cost equals the reservation when all three are called,
    and stays below it otherwise. (With the old 3-bytes-per-token estimate the
    reservation was below this bill.)"""
    cap = 30
    messages = (ChatMessage(role="user", content="価格は？ 1234567890 🙂 " * 4),)

    def worst(text: str) -> FunctionModel:
        return FunctionModel(
            lambda r: Reply(text, input_tokens=dense_tokens(r), output_tokens=r.max_tokens)
        )

    model = cascade(worst("A"), worst("A" if agree else "B"), worst("C"))
    budget = Budget("1.00")
    events: list[Event] = []
    mc = await call_model(
        pool_with(model), ctx(events, budget), messages, default_model=model.name, max_tokens=cap
    )
    started = events[0]
    assert isinstance(started, LLMCallStarted)
    tin = dense_tokens(ModelRequest(model="x", messages=messages, max_tokens=cap))
    assert started.reserved_usd == model.descriptor.cost(tin, cap)
    assert mc.cost_usd <= started.reserved_usd
    assert (mc.cost_usd == started.reserved_usd) is (not agree)
    assert budget.overrun_usd == 0
    assert budget.tokens_used <= 3 * (tin + cap)
    assert not any(isinstance(e, UsageAnomaly) for e in events)


def dense_tokens(request: ModelRequest) -> int:
    """The most tokens a byte-level BPE can make of a plain chat request: every UTF-8
    byte a token, plus 4 framing tokens per message and 3 for the reply priming."""
    text = sum(len((m.content or "").encode()) for m in request.messages)
    return text + 4 * len(request.messages) + 3


@pytest.mark.anyio
async def test_too_small_budget_calls_no_member() -> None:
    a, b, e = FunctionModel(never), FunctionModel(never), FunctionModel(never)
    model = cascade(a, b, e)
    # enough for the probes' worst case but not for all three members
    tin = dense_tokens(ModelRequest(model="x", messages=MSGS, max_tokens=20))
    budget = Budget(P1.cost(tin, 20) + P2.cost(tin, 20) + BIG.cost(tin, 20) / 2)
    with pytest.raises(BudgetExhausted, match="usd"):
        await call_model(
            pool_with(model), ctx([], budget), MSGS, default_model=model.name, max_tokens=20
        )
    assert a.requests == b.requests == e.requests == []
    assert budget.spent_usd == 0 and budget.reserved_usd == 0


@pytest.mark.anyio
async def test_call_limits_count_every_member() -> None:
    model = cascade(FunctionModel(never), FunctionModel(never), FunctionModel(never))
    budget = Budget(max_calls=2)  # a cascade may make three calls
    with pytest.raises(BudgetExhausted, match="calls"):
        await call_model(
            pool_with(model), ctx([], budget), MSGS, default_model=model.name, max_tokens=20
        )


@pytest.mark.anyio
async def test_failed_escalation_settles_what_the_probes_spent() -> None:
    a, b = ScriptedModel([reply("A", 20, 3)]), ScriptedModel([reply("B", 25, 4)])
    e = ScriptedModel([ModelError("big-v2", "down", status=500)])
    model = cascade(a, b, e)
    budget = Budget("1.00")
    events: list[Event] = []
    with pytest.raises(ModelError) as info:
        await call_model(
            pool_with(model), ctx(events, budget), MSGS, default_model=model.name, max_tokens=20
        )
    spent = P1.cost(20, 3) + P2.cost(25, 4)
    assert budget.spent_usd == spent and budget.reserved_usd == 0
    assert budget.calls_made == 2 and budget.tokens_used == 52
    assert info.value.pool_model == model.name
    finished = events[-1]
    assert isinstance(finished, LLMCallFinished)
    assert finished.error is not None and finished.cost_usd == spent


@pytest.mark.anyio
async def test_agent_counts_a_failed_cascade_in_its_cost() -> None:
    """An agent whose cascade call fails reports what the probes spent, like the budget."""
    a, b = ScriptedModel([reply("A", 20, 3)]), ScriptedModel([reply("B", 25, 4)])
    e = ScriptedModel([ModelError("big-v2", "down", status=500)])
    model = cascade(a, b, e)
    solver = LLMAgent("solver", instructions="Solve.", model=model.name, pool=pool_with(model))
    budget = Budget("1.00")
    result = await solver.invoke(
        ActionCall(call_id="c", action="solver", arguments={"task": "?"}, run_id="run_1"),
        ctx([], budget),
    )
    assert result.status is ActionStatus.ERROR
    assert result.cost_usd == budget.spent_usd == P1.cost(20, 3) + P2.cost(25, 4)
    assert result.usage[model.name].total_tokens == 52


def test_exported_at_the_top() -> None:
    for name in ("CascadeModel", "CascadeOutcome", "answers_agree", "normalize_answer"):
        assert name in paraloom.__all__ and hasattr(paraloom, name)


def test_a_cascade_is_retried_per_member_not_whole() -> None:
    from paraloom.models import RetryingModel

    member = ScriptedModel([reply("A")])
    with pytest.raises(TypeError, match="wrap each member"):
        RetryingModel(cascade(member, member, member))
    # retrying members inside a cascade is the supported shape
    assert isinstance(cascade(RetryingModel(member), member, member), CascadeModel)


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_a_member_retry_holds_only_that_members_worst_case() -> None:
    """Probe p1's first request times out on the client (abandoned: it may be billed)
    and its retry answers. The abandoned attempt keeps p1's worst case and the retry
    reserves p1's worst case anew, not the whole cascade's: a budget with room for the
    cascade plus one p1 call is enough (before: the retry asked for a second cascade
    worst case and the call failed with BudgetExhausted), and the spend is exact."""
    from paraloom.models import OpenAICompatible, RetryPolicy
    from paraloom.models.estimate import request_input_size
    from paraloom.runtime.worst_case import worst_case
    from paraloom.testing import Slow
    from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

    slow_once = {"p1-v1"}

    def handler(req: RecordedRequest) -> Reply | Slow:
        if req.model in slow_once:
            slow_once.discard(req.model)
            return Slow(30, Reply("late"))
        return reply("B", 10, 2)

    server = OpenAITestServer(handler=handler)
    retry = RetryPolicy(attempts=2, initial_wait_s=0)
    async with (
        server.running(),
        OpenAICompatible(server.base_url, "k", timeout_s=0.3, retry=retry) as client,
    ):
        model = cascade(client, client, client)
        size = request_input_size(ModelRequest(model="x", messages=MSGS))
        whole, p1 = worst_case(model.descriptor, size, 20), worst_case(P1, size, 20)
        budget = Budget(whole.usd + p1.usd)
        events: list[Event] = []
        mc = await call_model(
            pool_with(model), ctx(events, budget), MSGS, default_model=model.name, max_tokens=20
        )
    assert [r.model for r in server.requests].count("p1-v1") == 2
    assert mc.completion.cascade is not None and not mc.completion.cascade.escalated
    answered = P1.cost(10, 2) + P2.cost(10, 2)
    assert mc.cost_usd == p1.usd + answered
    assert budget.spent_usd == mc.cost_usd and budget.reserved_usd == 0
    assert budget.overrun_usd == 0
    [started] = [e for e in events if isinstance(e, LLMCallStarted)]
    [finished] = [e for e in events if isinstance(e, LLMCallFinished)]
    assert started.reserved_usd == whole.usd
    assert finished.cost_usd == mc.cost_usd and not finished.abandoned
    assert finished.usage.calls == 3  # the abandoned attempt, its retry and p2


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_a_failed_cascade_still_charges_its_members_abandoned_attempt() -> None:
    """p1's first request is abandoned and retried, the probes disagree and the
    escalation model refuses (HTTP 400, not billed): the call fails, and what it
    charges is the answered probes plus p1's abandoned attempt at p1's worst case."""
    from paraloom.models import OpenAICompatible, RetryPolicy
    from paraloom.models.estimate import request_input_size
    from paraloom.runtime.worst_case import worst_case
    from paraloom.testing import Fault, Slow
    from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

    slow_once = {"p1-v1"}

    def handler(req: RecordedRequest) -> Reply | Slow | Fault:
        if req.model in slow_once:
            slow_once.discard(req.model)
            return Slow(30, Reply("late"))
        if req.model == "big-v2":
            return Fault(400, "refused", type="invalid_request_error")
        return reply("A" if req.model == "p1-v1" else "B", 10, 2)

    server = OpenAITestServer(handler=handler)
    retry = RetryPolicy(attempts=2, initial_wait_s=0)
    async with (
        server.running(),
        OpenAICompatible(server.base_url, "k", timeout_s=0.3, retry=retry) as client,
    ):
        model = cascade(client, client, client)
        p1 = worst_case(P1, request_input_size(ModelRequest(model="x", messages=MSGS)), 20)
        budget = Budget("1.00")
        events: list[Event] = []
        with pytest.raises(ModelError, match="refused"):
            await call_model(
                pool_with(model), ctx(events, budget), MSGS, default_model=model.name, max_tokens=20
            )
    expected = p1.usd + P1.cost(10, 2) + P2.cost(10, 2)
    assert budget.spent_usd == expected and budget.reserved_usd == 0
    [finished] = [e for e in events if isinstance(e, LLMCallFinished)]
    assert finished.cost_usd == expected and not finished.abandoned
