"""The budget judged against the provider's own ledger (issue 14).

A separate provider process bills every reply it produces, including the ones its
client abandoned; 30 % of requests get a fault (429, 500, a client timeout it still
bills, a truncated body it still bills, a slow reply). Randomized concurrent DAGs of LLM
agents run under per-run and shared budgets (seeded, bounded).

* honest and dense-tokenizer modes: the provider's ledger never exceeds any budget;
* lying mode (usage above ``max_tokens``): every run lied to is reported (status
  ``warning``, a ``usage_anomaly`` warning), and no other;
* every run: ``RunResult.cost_usd`` == the sum of its ``LLMCallFinished`` == the store's
  sum of its LLM calls == the store's run cost.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from paraloom.store import RunStore
from paraloom.testing.budget_harness import (
    ProviderProcess,
    Workload,
    WorkloadReport,
    provider_prices,
    run_workload,
)
from paraloom.testing.provider import ProviderConfig

pytestmark = pytest.mark.timeout(120)


def run_mode(tmp_path: Path, mode: str, workload: Workload, seed: int) -> WorkloadReport:
    config = ProviderConfig(
        prices=provider_prices(),
        mode=mode,  # type: ignore[arg-type]
        fault_rate=0.3,
        seed=seed,
        timeout_reply_s=2.0,
    )
    with ProviderProcess(config) as provider, RunStore(tmp_path / f"{mode}.sqlite") as store:
        return anyio.run(run_workload, provider.base_url, workload, store)


def assert_one_tally(report: WorkloadReport) -> None:
    for run in report.runs:
        r = run.result
        assert r.cost_usd == run.events_cost_usd == run.store_cost_usd, run.key
        assert run.store_run_cost_usd == r.cost_usd, run.key
    for b in report.budgets.values():
        assert b.budget.reserved_usd == 0 and b.budget.calls_reserved == 0
        # what the runs report adds up to what their budget spent
        costs = [r.result.cost_usd for r in report.runs if r.budget == b.name]
        assert sum(costs) == b.budget.spent_usd, b.name


@pytest.mark.parametrize("mode", ["honest", "dense"])
def test_the_provider_never_bills_past_a_budget(tmp_path: Path, mode: str) -> None:
    report = run_mode(tmp_path, mode, Workload(runs=14, seed=7), seed=11)
    # faults happened (how many requests the runs make before their budgets bite depends on
    # how the concurrent branches interleave: 17-40 seen; the bound below leaves room)
    assert report.ledger["requests"] > 10 and report.ledger["faults"] >= 2
    for b in report.budgets.values():
        limit = b.budget.limit_usd
        assert limit is not None
        assert b.billed_usd <= limit, (b.name, b.billed_usd, limit)
        assert b.billed_usd <= b.budget.spent_usd  # paraloom's books bound the bill
    assert report.overspend_usd() == 0
    assert not report.lied_runs() and not report.warned_runs()
    assert all(r.result.status != "warning" for r in report.runs)
    assert any(
        r.result.status == "budget_exhausted" or r.result.status == "failed" for r in report.runs
    )  # the budgets were tight enough to bite
    assert any(r.result.ok for r in report.runs)
    assert_one_tally(report)


def test_lying_usage_is_reported_on_every_affected_run(tmp_path: Path) -> None:
    # no cancellations: every lying reply reaches its client, so every one must be seen
    workload = Workload(runs=14, seed=3, cancellations=False)
    report = run_mode(tmp_path, "lying", workload, seed=5)
    lied = report.lied_runs()
    assert len(lied) >= 3
    assert report.warned_runs() == lied
    for run in report.runs:
        if run.key in lied:
            assert run.result.status != "ok"
            assert any("usage_anomaly" in w for w in run.result.warnings)
    over = [b for b in report.budgets.values() if b.overspend_usd > 0]
    for b in over:  # a per-run budget the liar pushed past its limit: its run is not ok
        assert b.budget.exceeded
        if b.name.startswith("own-"):
            [run] = [r for r in report.runs if r.budget == b.name]
            assert run.result.status != "ok" and any(
                "budget exceeded" in w for w in run.result.warnings
            )
    assert_one_tally(report)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["honest", "dense"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_longer_randomized_workloads(tmp_path: Path, mode: str, seed: int) -> None:
    """The same checks over more and larger workloads (CI)."""
    report = run_mode(tmp_path, mode, Workload(runs=30, max_subtasks=6, seed=seed), seed=seed)
    assert report.overspend_usd() == 0
    assert all(b.billed_usd <= b.budget.spent_usd for b in report.budgets.values())
    assert not report.warned_runs()
    assert_one_tally(report)
