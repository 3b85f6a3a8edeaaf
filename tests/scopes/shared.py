"""Several OS processes of :mod:`paraloom.testing.scoped_harness` sharing one ledger,
against one billing provider process (it bills dense: every call up to its worst case,
so an overrun is possible whenever the scopes do not hold)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import anyio

from paraloom.runtime.scopes import ScopeState
from paraloom.store.ledger import open_ledger
from paraloom.testing.budget_harness import ProviderProcess, provider_prices
from paraloom.testing.provider import ProviderConfig
from paraloom.testing.scoped_harness import Go, ProcessReport, WorkerConfig

TENANT = "tenant:acme"


def scopes_of(ledger: str, keys: Sequence[str] | None = None) -> list[ScopeState]:
    async def read() -> list[ScopeState]:
        async with open_ledger(ledger) as led:
            return await led.show(keys)

    return anyio.run(read)


def set_limit(ledger: str, key: str, usd: Decimal) -> None:
    async def write() -> None:
        async with open_ledger(ledger) as led:
            await led.set_limit(key, usd)

    anyio.run(write)


@dataclass
class Outcome:
    limit: Decimal
    reports: list[ProcessReport]
    billed: Decimal

    @property
    def reported_spent(self) -> Decimal:
        return sum((r.spent_usd for r in self.reports), Decimal(0))

    @property
    def stopped_runs(self) -> int:
        return sum(1 for r in self.reports for run in r.runs if run.budget_stopped)


def run_processes(
    ledger: str,
    processes: int,
    *,
    runs: int,
    fraction: Decimal,
    scoped: bool = True,
    seed: int = 0,
) -> Outcome:
    """Start ``processes`` workers, set the tenant's limit to ``fraction`` of all their
    runs' first calls' worst case, and let them run together. ``scoped=False``: no
    scopes, each process one local budget of the whole limit (the control)."""
    config = ProviderConfig(prices=provider_prices(), mode="dense", fault_rate=0.2, seed=seed)
    with ProviderProcess(config) as provider:
        procs: list[subprocess.Popen[str]] = []
        try:
            for i in range(processes):
                wc = WorkerConfig(
                    base_url=provider.base_url,
                    ledger=ledger,
                    scopes=[TENANT, f"session:p{i}"] if scoped else [],
                    process=i,
                    runs=runs,
                    seed=seed,
                )
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "paraloom.testing.scoped_harness",
                            wc.model_dump_json(),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            worst = Decimal(0)
            for p in procs:
                assert p.stdout is not None
                line = p.stdout.readline()
                assert line.startswith("READY "), line
                worst += Decimal(line.split()[1])
            limit = (worst * fraction).quantize(Decimal("0.000001"))
            set_limit(ledger, TENANT, limit)
            for i in range(processes):
                set_limit(ledger, f"session:p{i}", limit)  # never the binding one here
            go = Go(local_limit_usd=None if scoped else limit).model_dump_json()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(go + "\n")
                p.stdin.flush()
            reports = []
            for p in procs:
                out, _ = p.communicate(timeout=240)
                assert p.returncode == 0, out
                reports.append(ProcessReport.model_validate_json(out.strip().splitlines()[-1]))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        billed = sum((Decimal(v) for v in provider.ledger()["by_account"].values()), Decimal(0))
    return Outcome(limit, reports, billed)
