"""Across OS processes on one machine: a SQLite ledger shared by 3 processes, and a
holder killed with holds outstanding (SQLite and PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from paraloom.store.ledger import open_ledger
from tests.scopes.conftest import fresh_postgres
from tests.scopes.shared import TENANT, run_processes, scopes_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HOLDER = """
import sys, anyio
from decimal import Decimal
from paraloom.store.ledger import open_ledger
async def main():
    async with open_ledger(sys.argv[1]) as led:
        await led.reserve(["tenant:acme", "session:dead"], Decimal("0.3"))
        hold = await led.reserve(["tenant:acme"], Decimal("0.2"))
        await led.settle(hold, Decimal("0.05"))
        print("HELD", flush=True)
        await anyio.sleep(600)
anyio.run(main)
"""


def test_three_processes_share_a_sqlite_ledger(tmp_path: Path) -> None:
    location = str(tmp_path / "ledger.sqlite")
    out = run_processes(location, 3, runs=10, fraction=Decimal("0.4"), seed=2)
    (tenant,) = scopes_of(location, [TENANT])
    assert out.billed <= out.limit
    assert out.stopped_runs > 0
    assert tenant.spent_usd == out.reported_spent
    assert tenant.reserved_usd == 0 and tenant.holds == 0


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_killed_holders_holds_are_kept_as_spent(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        location = str(tmp_path / "ledger.sqlite")
    else:
        location = request.getfixturevalue("postgres_url")
        anyio.run(fresh_postgres, location)

    async def setup() -> None:
        async with open_ledger(location) as led:
            await led.set_limit(TENANT, Decimal("1"))
            await led.set_limit("session:dead", Decimal("1"))

    anyio.run(setup)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, location], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HELD"
        held = {s.key: s for s in scopes_of(location)}
        assert held[TENANT].reserved_usd == Decimal("0.3") and held[TENANT].holds == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()

    async def reap() -> int:
        # opening the ledger reaps too; reap() again finds nothing left
        async with open_ledger(location) as led:
            return await led.reap()

    assert anyio.run(reap) == 0
    after = {s.key: s for s in scopes_of(location)}
    # the outstanding hold is kept at its worst case (the provider may have billed it),
    # the settled one at what it cost
    assert after[TENANT].spent_usd == Decimal("0.35")
    assert after["session:dead"].spent_usd == Decimal("0.3")
    assert all(s.reserved_usd == 0 and s.holds == 0 for s in after.values())
