"""One process of a shared-budget test: ``runs`` concurrent random LLM workflows (the
budget harness's DAGs) against a :mod:`paraloom.testing.provider` process, each run's
budget inside the ledger scopes given (run ⊂ … ⊂ tenant).

    python -m paraloom.testing.scoped_harness CONFIG_JSON

It prints ``READY <worst case of its runs' first calls, dollars>``, waits for a
:class:`Go` line on standard input (so that several processes start together), runs,
and prints one JSON line: :class:`ProcessReport`. A ``Go`` with ``local_limit_usd``
instead gives all its runs one in-memory budget of that amount and no scopes: the
"scope check disabled" control.
"""

from __future__ import annotations

import random
import sys
from decimal import Decimal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from paraloom.models import ModelPool, OpenAICompatible, RetryPolicy
from paraloom.protocols.actions import ActionStatus
from paraloom.runtime.budget import Budget
from paraloom.runtime.scopes import ScopedBudget
from paraloom.store.ledger import open_ledger
from paraloom.testing.budget_harness import MODELS, Workload, _random_run

__all__ = ["Go", "ProcessReport", "RunReport", "WorkerConfig", "main"]


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    ledger: str
    scopes: list[str] = Field(default_factory=list)
    process: int = 0
    runs: int = 20
    max_subtasks: int = 3
    seed: int = 0


class Go(BaseModel):
    model_config = ConfigDict(extra="forbid")

    local_limit_usd: Decimal | None = None


class RunReport(BaseModel):
    key: str
    status: str
    cost_usd: Decimal
    budget_spent_usd: Decimal
    budget_stopped: bool


class ProcessReport(BaseModel):
    process: int
    runs: list[RunReport]
    spent_usd: Decimal = Field(description="What this process's budgets settled.")
    unsettled_holds: int = 0


async def run_worker(config: WorkerConfig) -> ProcessReport:
    c = config
    rng = random.Random(c.seed * 1000 + c.process)
    workload = Workload(max_subtasks=c.max_subtasks, cancellations=True, client_timeout_s=0.5)
    retry = RetryPolicy(attempts=2, initial_wait_s=0.01, max_wait_s=0.05)
    async with (
        OpenAICompatible(c.base_url, "not-a-key", timeout_s=0.5, retry=retry) as client,
        open_ledger(c.ledger, label=f"harness{c.process}", lease_s=10) as ledger,
    ):
        pool = ModelPool(MODELS, client=client)
        plans = [_random_run(rng, f"p{c.process}r{i}", pool, workload, None) for i in range(c.runs)]
        worst = sum((w for _, w in plans), Decimal(0))
        print(f"READY {worst}", flush=True)
        go = Go.model_validate_json(await anyio.to_thread.run_sync(sys.stdin.readline))
        limit = go.local_limit_usd
        shared = Budget(limit) if limit is not None else None
        budgets: list[Budget] = []
        reports: list[RunReport] = []

        async def one(i: int) -> None:
            orch = plans[i][0]
            budget = shared or ScopedBudget(ledger, c.scopes)
            budgets.append(budget)
            result = await orch.run({"run": i}, budget=budget)
            stopped = any(
                r.status is ActionStatus.BUDGET_EXHAUSTED for r in result.subtasks.values()
            )
            reports.append(
                RunReport(
                    key=f"p{c.process}r{i}",
                    status=result.status,
                    cost_usd=result.cost_usd,
                    budget_spent_usd=budget.spent_usd,
                    budget_stopped=stopped,
                )
            )

        async with anyio.create_task_group() as tg:
            for i in range(c.runs):
                tg.start_soon(one, i)
    unique = {id(b): b for b in budgets}.values()
    return ProcessReport(
        process=c.process,
        runs=sorted(reports, key=lambda r: r.key),
        spent_usd=sum((b.spent_usd for b in unique), Decimal(0)),
        unsettled_holds=sum(b.unsettled_holds for b in unique if isinstance(b, ScopedBudget)),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = WorkerConfig.model_validate_json(args[0])
    report = anyio.run(run_worker, config)
    print(report.model_dump_json(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
