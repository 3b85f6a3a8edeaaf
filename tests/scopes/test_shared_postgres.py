"""The guarantee, shown against the provider's own books: 4 OS processes × 20
concurrent LLM workflows share one tenant scope in PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.scopes.shared import TENANT, run_processes, scopes_of

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]


def test_four_processes_never_overspend_the_tenant(postgres_url: str) -> None:
    out = run_processes(postgres_url, 4, runs=20, fraction=Decimal("0.4"))
    (tenant,) = scopes_of(postgres_url, [TENANT])
    assert out.billed <= out.limit, f"provider billed {out.billed} > limit {out.limit}"
    assert out.stopped_runs > 0, "the tenant limit was never binding"
    assert tenant.spent_usd == out.reported_spent, "Σ processes' spends != the scope's spent"
    assert tenant.spent_usd <= tenant.limit_usd
    assert tenant.reserved_usd == 0 and tenant.holds == 0
    assert out.billed <= tenant.spent_usd  # each call reserved (and kept) its worst case
    assert all(r.unsettled_holds == 0 for r in out.reports)


def test_without_the_scope_the_same_load_overspends(postgres_url: str) -> None:
    """The control: each process holding the whole limit in its own memory overspends
    it (so the test above can fail)."""
    out = run_processes(postgres_url, 4, runs=20, fraction=Decimal("0.4"), scoped=False, seed=1)
    assert out.billed > out.limit
