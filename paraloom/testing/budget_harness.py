"""The budget fault harness: randomized concurrent DAGs of LLM agents, under per-run
and shared budgets, against a :mod:`paraloom.testing.provider` process that keeps its
own ledger. Used by the test suite and ``benchmarks/budget_truth.py``.

    with ProviderProcess(ProviderConfig(prices=..., mode="dense", fault_rate=0.3)) as p:
        report = anyio.run(run_workload, p.base_url, Workload(runs=20, seed=1), store)
    report.overspend()   # per budget: what the provider billed above its limit
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol

import anyio
import httpx

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible, RetryPolicy
from paraloom.orchestrator import Orchestrator, RunResult
from paraloom.orchestrator.events import Listener
from paraloom.orchestrator.planner import StaticPlanner
from paraloom.protocols.events import Event, LLMCallFinished
from paraloom.protocols.messages import ModelDescriptor
from paraloom.protocols.plan import FailurePolicy, Plan, Subtask
from paraloom.runtime.budget import Budget
from paraloom.runtime.worst_case import measure_texts, worst_case
from paraloom.testing.provider import ProviderConfig

__all__ = [
    "MODELS",
    "BudgetOutcome",
    "ProviderProcess",
    "RunOutcome",
    "StoreLike",
    "Workload",
    "WorkloadReport",
    "provider_prices",
    "run_workload",
]

MODELS = (
    ModelDescriptor(
        name="small",
        model_id="prov-small",
        input_price_per_m=Decimal("0.15"),
        output_price_per_m=Decimal("0.6"),
    ),
    ModelDescriptor(
        name="mid",
        model_id="prov-mid",
        input_price_per_m=Decimal(3),
        output_price_per_m=Decimal(15),
    ),
    ModelDescriptor(
        name="large",
        model_id="prov-large",
        input_price_per_m=Decimal(10),
        output_price_per_m=Decimal(30),
    ),
)
_ALPHABETS = ("The quick brown fox jumps. ", "東京の天気は晴れ。", "3.14159265358979 ", "🙂🚀 ok ")


class StoreLike(Protocol):
    """What the harness needs of a :class:`~paraloom.store.RunStore`."""

    def listener(self, *, metadata: dict[str, Any] | None = None) -> Listener: ...

    async def aflush(self) -> None: ...

    def llm_cost(self, run_id: str) -> Decimal: ...

    def get_run(self, run_id: str) -> _Costed: ...


class _Costed(Protocol):
    @property
    def cost_usd(self) -> Decimal | None: ...


def provider_prices(
    models: tuple[ModelDescriptor, ...] = MODELS,
) -> dict[str, tuple[Decimal, Decimal]]:
    """The provider's price list: the same prices, keyed by provider model name."""
    return {m.provider_model: (m.input_price_per_m, m.output_price_per_m) for m in models}


class ProviderProcess:
    """``python -m paraloom.testing.provider`` as a child process on 127.0.0.1; stopped
    (standard input closed, then terminated if needed) on exit."""

    def __init__(self, config: ProviderConfig, *, startup_timeout_s: float = 30.0) -> None:
        self.config = config
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("provider process not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ProviderProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "paraloom.testing.provider", self.config.model_dump_json()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # "PORT n" once it listens
        if not line.startswith("PORT "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"provider process did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def ledger(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.base_url}/ledger", timeout=10).json()
        return data


@dataclass(frozen=True)
class Workload:
    """``runs`` runs of 1–``max_subtasks`` LLM-agent subtasks each (random DAGs), a
    ``shared_fraction`` of them grouped under ``shared_budgets`` shared budgets, the
    rest with their own. ``cancellations``: random subtask timeouts and
    ``on_failure: fail`` (which cancel in-flight calls). ``vouched_ratio``: declare
    every model's ``tokenizer_bytes_per_token`` (``3`` reproduces the old estimate)."""

    runs: int = 12
    max_subtasks: int = 4
    shared_budgets: int = 2
    shared_fraction: float = 0.5
    budget_fraction: tuple[float, float] = (0.3, 1.2)
    max_prompt_chars: int = 900
    cancellations: bool = True
    client_timeout_s: float = 0.5
    vouched_ratio: Decimal | None = None
    seed: int = 0


@dataclass
class RunOutcome:
    key: str
    budget: str
    result: RunResult
    events_cost_usd: Decimal
    store_cost_usd: Decimal | None = None
    store_run_cost_usd: Decimal | None = None


@dataclass
class BudgetOutcome:
    name: str
    budget: Budget
    runs: list[str] = field(default_factory=list)
    billed_usd: Decimal = Decimal(0)

    @property
    def overspend_usd(self) -> Decimal:
        limit = self.budget.limit_usd
        return max(Decimal(0), self.billed_usd - limit) if limit is not None else Decimal(0)


@dataclass
class WorkloadReport:
    runs: list[RunOutcome]
    budgets: dict[str, BudgetOutcome]
    ledger: dict[str, Any]

    def lied_runs(self) -> set[str]:
        return {k for k, n in self.ledger.get("lies", {}).items() if n}

    def warned_runs(self) -> set[str]:
        return {r.key for r in self.runs if any("usage_anomaly" in w for w in r.result.warnings)}

    def overspend_usd(self) -> Decimal:
        return sum((b.overspend_usd for b in self.budgets.values()), Decimal(0))

    def utilisation(self) -> list[float]:
        """Billed / limit of every budget with a positive limit."""
        return [
            float(b.billed_usd / b.budget.limit_usd)
            for b in self.budgets.values()
            if b.budget.limit_usd
        ]


def _text(rng: random.Random, n: int) -> str:
    alphabet = rng.choice(_ALPHABETS)
    return (alphabet * (n // len(alphabet) + 1))[:n]


async def run_workload(
    base_url: str, workload: Workload, store: StoreLike | None = None
) -> WorkloadReport:
    """Run the workload's runs concurrently against the provider at ``base_url``;
    read its ledger at the end."""
    w = workload
    rng = random.Random(w.seed)
    models = tuple(
        m.model_copy(update={"tokenizer_bytes_per_token": w.vouched_ratio}) for m in MODELS
    )
    retry = RetryPolicy(attempts=2, initial_wait_s=0.01, max_wait_s=0.05)
    async with OpenAICompatible(
        base_url, "not-a-key", timeout_s=w.client_timeout_s, retry=retry
    ) as client:
        pool = ModelPool(models, client=client)
        plans: list[tuple[str, str, Orchestrator, Decimal]] = []
        for i in range(w.runs):
            key = f"run{i}"
            orch, worst = _random_run(rng, key, pool, w, store)
            shared = rng.random() < w.shared_fraction and w.shared_budgets > 0
            budget = f"shared{rng.randrange(w.shared_budgets)}" if shared else f"own-{key}"
            plans.append((key, budget, orch, worst))
        budgets: dict[str, BudgetOutcome] = {}
        for name in sorted({b for _, b, _, _ in plans}):
            worst = sum((wc for _, b, _, wc in plans if b == name), Decimal(0))
            frac = Decimal(str(round(rng.uniform(*w.budget_fraction), 3)))
            budgets[name] = BudgetOutcome(name, Budget(worst * frac))
        outcomes: list[RunOutcome] = []

        async def one(key: str, bname: str, orch: Orchestrator) -> None:
            events: list[Event] = []
            result = await orch.run(
                {"run": key}, budget=budgets[bname].budget, on_event=events.append
            )
            cost = sum((e.cost_usd for e in events if isinstance(e, LLMCallFinished)), Decimal(0))
            outcomes.append(RunOutcome(key, bname, result, cost))
            budgets[bname].runs.append(key)

        async with anyio.create_task_group() as tg:
            for key, bname, orch, _ in plans:
                tg.start_soon(one, key, bname, orch)
    if store is not None:
        await store.aflush()
        for o in outcomes:
            o.store_cost_usd = store.llm_cost(o.result.run_id)
            o.store_run_cost_usd = store.get_run(o.result.run_id).cost_usd
    async with httpx.AsyncClient() as http:
        ledger: dict[str, Any] = (await http.get(f"{base_url}/ledger", timeout=10)).json()
    billed = {k: Decimal(v) for k, v in ledger["by_account"].items()}
    for b in budgets.values():
        b.billed_usd = sum((billed.get(r, Decimal(0)) for r in b.runs), Decimal(0))
    outcomes.sort(key=lambda o: int(o.key[3:]))
    return WorkloadReport(outcomes, budgets, ledger)


def _random_run(
    rng: random.Random, key: str, pool: ModelPool, w: Workload, store: StoreLike | None
) -> tuple[Orchestrator, Decimal]:
    """One run: a random DAG of fresh LLM agents tagged with the run's account, and the
    sum of its first calls' worst cases (to size budgets)."""
    n = rng.randint(1, w.max_subtasks)
    agents: list[LLMAgent] = []
    subtasks: list[Subtask] = []
    worst = Decimal(0)
    for i in range(n):
        model = rng.choice(pool.descriptors)
        instructions = f"[account:{key}] You are agent {i}. " + _text(rng, rng.randint(0, 200))
        task = _text(rng, rng.randint(1, w.max_prompt_chars))
        max_tokens = rng.randint(16, 400)
        agents.append(
            LLMAgent(
                f"{key}_a{i}",
                instructions=instructions,
                model=model.name,
                pool=pool,
                max_turns=1,
                max_tokens=max_tokens,
                structured_output=False,
            )
        )
        # budgets are sized on the true bound whatever the models vouch, so that
        # workloads with and without a vouched ratio get the same limits
        base = next(m for m in MODELS if m.name == model.name)
        worst += worst_case(base, measure_texts(instructions, task), max_tokens).usd
        deps = tuple(sorted(rng.sample(range(i), k=min(i, rng.randint(0, 2)))))
        timeout = rng.choice([None, None, None, 0.3, 1.0]) if w.cancellations else None
        on_failure = rng.choice(
            ["fail", "skip_dependents", "continue"] if w.cancellations else ["continue"]
        )
        policy = FailurePolicy(
            retries=rng.choice([0, 0, 1]),
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            backoff_jitter_s=0.0,
            timeout_s=timeout,
            on_failure=on_failure,
        )
        subtasks.append(
            Subtask(
                id=f"s{i}",
                action=f"{key}_a{i}",
                arguments={"task": task},
                depends_on=tuple(f"s{d}" for d in deps),
                policy=policy,
            )
        )
    plan = Plan(subtasks=tuple(subtasks))
    listeners = [store.listener(metadata={"harness": json.dumps(key)})] if store else []
    orch = Orchestrator(
        agents, StaticPlanner(plan, output=None), name=f"harness-{key}", listeners=listeners
    )
    return orch, worst
