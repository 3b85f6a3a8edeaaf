"""Scopes in one process (SQLite ledger): nesting, atomicity, exact money, the holder
leases and a property-style concurrency check of the invariants."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from paraloom.runtime.budget import BudgetExhausted
from paraloom.runtime.scopes import ScopedBudget, ScopeLedger, UnknownScope
from paraloom.store.ledger import describe, open_ledger
from paraloom.store.ledger_sql import SqlLedger
from paraloom.store.schema import redact_url

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
D = Decimal


async def spent_reserved(ledger: SqlLedger, key: str) -> tuple[Decimal, Decimal]:
    (s,) = await ledger.show([key])
    return s.spent_usd, s.reserved_usd


async def test_a_reservation_must_fit_every_enclosing_scope(ledger: SqlLedger) -> None:
    assert isinstance(ledger, ScopeLedger)
    await ledger.set_limit("tenant:acme", D("0.10"))
    await ledger.set_limit("session:s1", D("1.00"))
    budget = ScopedBudget(ledger, ["session:s1", "tenant:acme"], D("5.00"))
    with pytest.raises(BudgetExhausted, match="scope tenant:acme") as info:
        await budget.reserve(D("0.25"))  # fits the run (5.00) and the session, not the tenant
    assert info.value.remaining == D("0.10")
    # refused means nothing held anywhere: not in the session, not in the run
    assert await spent_reserved(ledger, "session:s1") == (0, 0)
    assert await spent_reserved(ledger, "tenant:acme") == (0, 0)
    assert budget.reserved_usd == 0
    assert budget.remaining_usd == D("0.10")  # the refusing scope's room, for the routers
    # and the run's own limit is checked too
    small = ScopedBudget(ledger, ["tenant:acme"], D("0.01"))
    with pytest.raises(BudgetExhausted, match="usd"):
        await small.reserve(D("0.05"))
    assert await spent_reserved(ledger, "tenant:acme") == (0, 0)


async def test_settle_keep_release_adjust_every_scope(ledger: SqlLedger) -> None:
    await ledger.set_limit("tenant:acme", D("1"))
    await ledger.set_limit("session:s1", D("0.5"))
    budget = ScopedBudget(ledger, ["tenant:acme", "session:s1"])
    a = await budget.reserve(D("0.2"))
    b = await budget.reserve(D("0.2"))
    c = await budget.reserve(D("0.1"))
    with pytest.raises(BudgetExhausted, match="scope session:s1"):
        await budget.reserve(D("0.000001"))
    for key in ("tenant:acme", "session:s1"):
        assert await spent_reserved(ledger, key) == (0, D("0.5"))
    await a.settle(D("0.0000001"))  # exact, not a float's neighbour
    await b.keep()
    await c.release()
    for key in ("tenant:acme", "session:s1"):
        assert await spent_reserved(ledger, key) == (D("0.2000001"), 0)
    assert budget.spent_usd == D("0.2000001")
    states = await ledger.show()
    assert [s.key for s in states] == ["session:s1", "tenant:acme"]
    assert all(s.holds == 0 for s in states)


async def test_an_unknown_scope_is_refused_not_unbounded(ledger: SqlLedger) -> None:
    await ledger.set_limit("tenant:acme", D("1"))
    budget = ScopedBudget(ledger, ["tenant:acme", "tenant:typo"])
    with pytest.raises(UnknownScope, match=r"tenant:typo.*paraloom budget set"):
        await budget.reserve(D("0.1"))
    assert await spent_reserved(ledger, "tenant:acme") == (0, 0)


async def test_changing_a_limit_keeps_spend(ledger: SqlLedger) -> None:
    await ledger.set_limit("t", D("1"))
    r = await ScopedBudget(ledger, ["t"]).reserve(D("0.4"))
    await r.settle(D("0.3"))
    await ledger.set_limit("t", D("0.2"))  # now below what was spent: nothing fits
    (state,) = await ledger.show(["t"])
    assert (state.limit_usd, state.spent_usd, state.remaining_usd) == (
        D("0.2"),
        D("0.3"),
        D("-0.1"),
    )
    with pytest.raises(BudgetExhausted):
        await ledger.reserve(["t"], D(0) + D("0.01"))
    with pytest.raises(ValueError, match=">= 0"):
        await ledger.set_limit("t", D("-1"))
    with pytest.raises(ValueError, match="scope key"):
        await ledger.set_limit(" padded", D("1"))


async def test_concurrent_reservations_hold_the_limit_exactly(ledger: SqlLedger) -> None:
    """Property-style: 40 tasks reserving, settling (at most what they reserved),
    keeping or releasing random amounts against nested scopes; the scopes never
    commit past their limits, and at the end spent is exactly the sum settled."""
    rng = random.Random(7)
    limits = {"tenant:t": D("3.000"), "session:a": D("2.000"), "session:b": D("2.000")}
    for key, usd in limits.items():
        await ledger.set_limit(key, usd)
    budgets = {s: ScopedBudget(ledger, ["tenant:t", s]) for s in ("session:a", "session:b")}
    refused = 0
    worst_seen = {k: D(0) for k in limits}

    async def check() -> None:
        for s in await ledger.show():
            assert s.spent_usd + s.reserved_usd <= s.limit_usd
            worst_seen[s.key] = max(worst_seen[s.key], s.spent_usd + s.reserved_usd)

    async def worker(seed: int) -> None:
        nonlocal refused
        r = random.Random(seed)
        for _ in range(8):
            budget = budgets[r.choice(sorted(budgets))]
            amount = D(r.randint(1, 300)) / 1000
            try:
                res = await budget.reserve(amount)
            except BudgetExhausted:
                refused += 1
                continue
            await check()
            action = r.choice(["settle", "keep", "release"])
            if action == "settle":
                await res.settle(amount * D(r.randint(0, 100)) / 100)
            elif action == "keep":
                await res.keep()
            else:
                await res.release()

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(worker, rng.randrange(10**6))
    await check()
    states = {s.key: s for s in await ledger.show()}
    assert all(s.reserved_usd == 0 and s.holds == 0 for s in states.values())
    for s in ("session:a", "session:b"):
        assert states[s].spent_usd == budgets[s].spent_usd
    assert states["tenant:t"].spent_usd == sum((b.spent_usd for b in budgets.values()), D(0))
    assert refused > 0  # the limits were binding
    assert worst_seen["tenant:t"] > D("2.5")  # and nearly reached


async def test_a_late_settle_after_the_holder_was_reaped_changes_nothing(
    tmp_path: Path,
) -> None:
    """A holder whose lease ran out (a frozen process) is reaped: its holds are kept
    at their worst case; its late settle is then refused and counted."""
    location = str(tmp_path / "ledger.sqlite")
    async with open_ledger(location, lease_s=0.3) as frozen, open_ledger(location) as reaper:
        await reaper.set_limit("t", D("1"))
        budget = ScopedBudget(frozen, ["t"])
        res = await budget.reserve(D("0.4"))
        frozen._stop.set()  # its heartbeat stops
        assert await reaper.reap() == 0  # still leased, and its pid is alive
        async with frozen.transaction() as tx:  # on another machine, its lease run out
            await tx.execute(
                "UPDATE paraloom_holders SET host = 'elsewhere', lease_until = 0 WHERE holder = ?",
                (frozen.holder,),
            )
        assert await reaper.reap() == 1
        assert await spent_reserved(reaper, "t") == (D("0.4"), 0)
        await res.settle(D("0.1"))
        assert budget.unsettled_holds == 1
        assert await spent_reserved(reaper, "t") == (D("0.4"), 0)


def test_locations_are_printed_without_passwords() -> None:
    url = "postgresql://alice:s3cret@db.example:5432/ledger?sslmode=require"
    assert "s3cret" not in redact_url(url) and "alice:***@db.example:5432" in redact_url(url)
    assert describe(url) == redact_url(url)
    assert describe("/tmp/l.sqlite") == "/tmp/l.sqlite"
    assert "s3cret" not in repr(open_ledger(url))


@pytest.mark.postgres
async def test_both_strategies_share_one_database_without_deadlocks(postgres_url: str) -> None:
    """Processes may use either strategy on one PostgreSQL ledger: overlapping scope
    sets, reserved from both at once, never deadlock, and the sums stay exact."""
    from tests.scopes.conftest import fresh_postgres

    await fresh_postgres(postgres_url)
    keys = ["a", "b", "c"]
    async with (
        open_ledger(postgres_url, strategy="conditional") as one,
        open_ledger(postgres_url, strategy="locked") as two,
    ):
        for key in keys:
            await one.set_limit(key, D("1.5"))
        budgets = [
            ScopedBudget(led, chosen)
            for led in (one, two)
            for chosen in (["a", "b"], ["b", "c"], ["c", "a"], keys)
        ]

        async def worker(seed: int) -> None:
            r = random.Random(seed)
            for _ in range(10):
                budget = r.choice(budgets)
                try:
                    res = await budget.reserve(D(r.randint(1, 90)) / 1000)
                except BudgetExhausted:
                    continue
                await res.settle(res.usd / 2)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for seed in range(30):
                    tg.start_soon(worker, seed)
        states = {s.key: s for s in await one.show()}
    for key in keys:
        mine = [b for b in budgets if key in b.scopes]
        assert states[key].spent_usd == sum((b.spent_usd for b in mine), D(0))
        assert states[key].reserved_usd == 0
        assert states[key].spent_usd <= states[key].limit_usd


async def test_a_router_refused_by_a_scope_chooses_again_within_it(ledger: SqlLedger) -> None:
    """The run's own budget fits the dear model, the tenant only the cheap one: the
    router (which prefers dear) is refused by the tenant, then chooses cheap."""
    from paraloom.models import ModelPool, call_model
    from paraloom.protocols.messages import ChatMessage
    from paraloom.routing.selector import RouterSelector
    from paraloom.runtime import measure_input, worst_case
    from paraloom.runtime.context import ActionContext
    from paraloom.testing import FunctionModel, Reply
    from tests.models.test_worst_case import CHEAP, DEAR, PrefersDear

    msgs = [ChatMessage(role="user", content="hello " * 200)]
    size = measure_input(msgs)
    cheap_wc, dear_wc = worst_case(CHEAP, size, 200).usd, worst_case(DEAR, size, 200).usd
    await ledger.set_limit("tenant:acme", (cheap_wc + dear_wc) / 2)
    budget = ScopedBudget(ledger, ["tenant:acme"], dear_wc * 10)
    sent: list[str] = []

    def reply(request: object) -> Reply:
        sent.append(str(getattr(request, "model", "")))
        return Reply("ok", input_tokens=10, output_tokens=5)

    pool = ModelPool([CHEAP, DEAR], client=FunctionModel(reply))
    context = ActionContext(
        run_id="r",
        emit=lambda e: None,
        budget=budget,
        model_selector=RouterSelector(PrefersDear(pacing="none"), offload=False),
    )
    first = await call_model(pool, context, msgs, default_model="dear", max_tokens=200)
    assert first.model == "cheap" and sent == ["cheap"]
    spent, reserved = await spent_reserved(ledger, "tenant:acme")
    assert reserved == 0 and spent == first.cost_usd == budget.spent_usd
    # with room again (a reservation fitted), the router sees the run's own budget
    assert budget.remaining_usd == budget.limit_usd - budget.spent_usd


async def test_a_cancellation_while_the_ledger_commits_leaks_no_hold(ledger: SqlLedger) -> None:
    """The cancellation arrives after the ledger took the hold, before the budget knows
    it: the hold must still be this budget's, and released with it (before, it stayed
    in the ledger until reaped as spent, so the scope's spend passed the runs')."""
    await ledger.set_limit("tenant:acme", D("1.00"))
    took = anyio.Event()

    class CommitThenCancelPoint:
        """The real ledger, with a cancellation point after its commit."""

        def __getattr__(self, name: str) -> object:
            return getattr(ledger, name)

        async def reserve(self, keys: list[str], usd: Decimal) -> str:
            hold = await ledger.reserve(keys, usd)
            took.set()
            await anyio.lowlevel.checkpoint()  # where a cancellation would be delivered
            return hold

    budget = ScopedBudget(CommitThenCancelPoint(), ["tenant:acme"], D("5.00"))  # type: ignore[arg-type]

    async def spend() -> None:
        async with await budget.reserve(D("0.25")):
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(spend)
        await took.wait()
        tg.cancel_scope.cancel()
    assert await spent_reserved(ledger, "tenant:acme") == (0, 0)
    (state,) = await ledger.show(["tenant:acme"])
    assert state.holds == 0
    assert budget.reserved_usd == 0 and budget.spent_usd == 0
